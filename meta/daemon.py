"""`netplex daemon`: the long-running meta-plugin, one per node, that the thin shim
(meta/shim.py) forwards CNI requests to.

Each request runs the same code as thin mode (`meta.plugin.add`, `delete`, `check`,
`gc`) on the request's config merged under the daemon's own (meta/daemon_config.py),
with pods and NADs from the watch caches (meta/daemon_source.py) and the built-in
delegates in-process (each netlink call opens its socket in a worker thread inside the
pod's namespace: delegates/netlink/netns.py), so a request costs no Python start, no
imports and, on a warm cache, no API read.

Admission, in this order, each bounded by the request's deadline (arrival + addTimeout;
past it, error 11):
1. the sandbox: one request per container ID at a time, so an ADD and a DEL of the same
   sandbox never interleave (in memory, then the file lock a shim's DEL fallback takes
   too: meta/daemon_lock.py); other sandboxes are not held up;
2. a worker: at most `concurrency` requests do work at once.
The ADD's own deadline is what is left of the request's when its work starts.

Hot-plug (meta/hotplug, on unless the config says `"hotplug": false`): the pod watch feeds
a reconciler that attaches and detaches networks when a running pod's selection changes,
under the same per-sandbox locks (`hold_sandbox`); ADD records each sandbox for it, DEL
tombstones it first.
With Kubernetes the daemon also enforces MultiNetworkPolicy (meta/policy/engine.py): an
ADD programs the new sandbox's rules after its delegates and before it answers (and is
undone if that fails); readiness waits for the policy watches too.

Lifecycle: ready (GET /readyz) once the watch caches are filled; SIGTERM or SIGINT makes
readyz fail and new requests get 503 (the shim then waits, or DELs by itself), stops
accepting, removes the socket, lets the requests in flight finish, and exits. All state
is on disk (the attachment cache, IPAM), so a restarted daemon picks up where this one
left off. The daemon never writes or removes the CNI config file."""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

import msgspec

from cni import invoke, skel, store, version
from cni.errors import CniError, Code
from meta import (
    config,
    daemon_config,
    daemon_lock,
    daemon_server,
    daemon_source,
    events,
    metrics,
    plugin,
    shim,
    sweep,
)
from meta.daemon_config import DaemonConfig, DaemonConfigError
from meta.hotplug import reconciler as hotplug_reconciler
from meta.node import hostpath
from meta.source import SourceError

if TYPE_CHECKING:
    from meta.policy.engine import PolicyEngine

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"


class Daemon:
    """The request side of the daemon: admission, the CNI verbs, readiness."""

    def __init__(
        self,
        conf: DaemonConfig,
        *,
        sources: daemon_source.Sources,
        meters: metrics.Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        policy: PolicyEngine | None = None,
    ) -> None:
        self.conf = conf
        self.policy = policy  # network policy (meta/policy/), with Kubernetes only
        self.sources = sources
        self.meters = meters or metrics.Metrics()
        self._clock = clock
        self._workers = threading.BoundedSemaphore(conf.concurrency)
        self._sandboxes = _SandboxLocks()
        self._accepting = True
        self.hotplug: hotplug_reconciler.Reconciler | None = None  # meta/hotplug, set by start()
        # Pod events (AddedInterface, FailedAddInterface) through the watch sources' client.
        self.events = events.EventRecorder(
            lambda: getattr(getattr(self.sources, "kube", None), "create_event", None),
            host=conf.node_name, count=self.meters.count_event,
        )

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def ready(self) -> bool:
        return self._accepting and self.sources.ready and (self.policy is None or self.policy.synced)

    def stop_accepting(self) -> None:
        self._accepting = False

    def resync(self, timeout: float) -> bool:
        return self.sources.resync(timeout)

    def handle_cni(self, request: Mapping[str, Any]) -> tuple[int, Any]:
        """One shim request -> (exit code, output document or None), as the plugin would
        have printed it. Never raises."""
        started = self._clock()
        env = {str(key): str(value) for key, value in dict(request.get("env") or {}).items()}
        env = hostpath.with_netns(env, self.conf.host_root)  # a node path, from a daemon in a pod
        merged = shim.merge_config(dict(request.get("config") or {}), self.conf.meta)
        stdin = json.dumps(hostpath.with_readiness_file(merged, self.conf.host_root)).encode()
        command = env.get("CNI_COMMAND", "")
        answer_version = _peek_version(stdin)
        code = 0
        with self.meters.inflight():
            try:
                args = skel.parse_env(env, stdin)
                output = skel.dispatch(self._plugin(started), args)
                exit_code = 0
            except CniError as err:
                code, output, exit_code = err.code, err.to_wire(answer_version), 1
            except Exception as exc:  # as the skeleton does: error 999, traceback in the log
                log.exception("%s %s: internal error", command, env.get("CNI_CONTAINERID", ""))
                internal = skel.internal_error(exc)
                code, output, exit_code = internal.code, internal.to_wire(answer_version), 1
        elapsed = self._clock() - started
        self.meters.observe_request(command or "?", code, elapsed)
        level = logging.INFO if command in ("ADD", "DEL") or code else logging.DEBUG
        log.log(
            level, "%s %s %s: %s in %.1f ms", command, env.get("CNI_CONTAINERID", "-"), _pod_of(env),
            "ok" if not code else f"error {code}: {output.get('msg', '') if isinstance(output, dict) else ''}",
            elapsed * 1000,
        )
        return exit_code, output

    def _plugin(self, started: float) -> skel.Plugin:
        """The CNI verbs for one request, admitted and with this daemon's sources."""

        def add(args: skel.CmdArgs) -> Any:
            conf = config.load_meta_conf(args.stdin)
            deadline = started + conf.add_timeout
            with self._admitted(args, conf, deadline) as remaining:
                conf = msgspec.structs.replace(conf, add_timeout=remaining)
                factory = self.sources.for_request(conf, pod_uid=args.cni_args.get("K8S_POD_UID", ""))
                result = plugin.add(conf, args, source_factory=factory, events=self.events)
                self._enforce_policy(conf, args, deadline)
                if self.hotplug is not None:
                    self.hotplug.sandbox_added(conf.cni_dir, args, json.loads(args.stdin))
                return result

        def delete(args: skel.CmdArgs) -> None:
            conf = config.load_meta_conf(args.stdin)
            with self._admitted(args, conf, started + conf.add_timeout):
                if self.hotplug is not None:  # from now on nothing attaches to this sandbox
                    self.hotplug.sandbox_deleted(conf.cni_dir, args.container_id, args.ifname)
                plugin.delete(conf, args)
                if self.policy is not None:
                    self.policy.forget(conf.cni_dir, args.container_id)

        def check(args: skel.CmdArgs) -> None:
            conf = config.load_meta_conf(args.stdin)
            with self._admitted(args, conf, started + conf.add_timeout):
                plugin.check(conf, args)

        def gc(args: skel.CmdArgs) -> None:
            conf = config.load_meta_conf(args.stdin)
            with self._admitted(args, conf, started + conf.add_timeout):
                plugin.gc(conf, args)

        def status(args: skel.CmdArgs) -> None:
            conf = config.load_meta_conf(args.stdin)
            if not self.sources.ready:
                raise CniError(Code.NOT_AVAILABLE, "not ready: the netplex daemon's watch caches are syncing")
            if not config.is_ready(conf):
                raise CniError(
                    Code.NOT_AVAILABLE,
                    f"not ready: readinessindicatorfile {conf.readiness_indicator_file!r} does not exist",
                )
            from meta import statusfwd  # the cluster network's own STATUS answer

            statusfwd.forward(
                conf, args, builtins=plugin.builtins_for_status(conf),
                source_factory=self.sources.for_request(conf, pod_uid=""),
            )

        return skel.Plugin(add=add, delete=delete, check=check, status=status, gc=gc, about="netplex")

    def _enforce_policy(self, conf: config.MetaConf, args: skel.CmdArgs, deadline: float) -> None:
        """The new sandbox's network policy, before the ADD returns; on failure the ADD is
        undone (an interface must not come up unenforced)."""
        if self.policy is None:
            return
        try:
            self.policy.enforce_sandbox(
                conf.cni_dir, args.container_id, args.ifname, timeout=max(0.1, deadline - self._clock())
            )
        except CniError:
            with contextlib.suppress(CniError):
                plugin.delete(conf, args)
            raise

    @contextlib.contextmanager
    def hold_sandbox(self, container_id: str, cni_dir: str, timeout: float) -> Iterator[None]:
        """The sandbox's locks, as a CNI request takes them (hot-plug's way in)."""
        deadline = self._clock() + timeout
        with (
            self._sandboxes.hold(container_id, timeout),
            daemon_lock.sandbox_lock(cni_dir, container_id, deadline=deadline),
        ):
            yield

    @contextlib.contextmanager
    def _admitted(self, args: skel.CmdArgs, conf: config.MetaConf, deadline: float) -> Iterator[float]:
        """Hold the sandbox and a worker; yields the seconds left until `deadline`."""
        queued = self._clock()
        with contextlib.ExitStack() as held:
            if args.container_id:
                held.enter_context(self._sandboxes.hold(args.container_id, deadline - self._clock()))
                held.enter_context(daemon_lock.sandbox_lock(conf.cni_dir, args.container_id, deadline=deadline))
            if not self._workers.acquire(timeout=max(0.0, deadline - self._clock())):
                raise CniError(
                    Code.TRY_AGAIN_LATER,
                    f"the netplex daemon is busy: all {self.conf.concurrency} workers stayed taken until the deadline",
                )
            held.callback(self._workers.release)
            self.meters.observe_queue_wait(self._clock() - queued)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise CniError(Code.TRY_AGAIN_LATER, "the request's deadline (addTimeout) passed while it waited")
            yield remaining


class _SandboxLocks:
    """One lock per container ID, made on demand and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._users: collections.Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def hold(self, container_id: str, timeout: float) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(container_id, threading.Lock())
            self._users[container_id] += 1
        try:
            if not lock.acquire(timeout=max(0.0, timeout)):
                raise CniError(
                    Code.TRY_AGAIN_LATER,
                    f"container {container_id!r} is busy with another request until the deadline",
                )
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                self._users[container_id] -= 1
                if not self._users[container_id]:
                    del self._users[container_id]
                    del self._locks[container_id]

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


class Running:
    """A started daemon: its service, server and metrics; `stop()` ends it gracefully."""

    def __init__(self, daemon: Daemon, server: daemon_server.Server, meters: metrics.Metrics) -> None:
        self.daemon = daemon
        self.server = server
        self.meters = meters

    def stop(self) -> None:
        """readyz fails, new requests get 503, the socket goes, in-flight requests finish."""
        log.info("netplex daemon: shutting down; finishing the requests in flight")
        self.daemon.stop_accepting()
        self.server.close()
        if self.daemon.hotplug is not None:
            self.daemon.hotplug.stop()
        self.daemon.events.close()
        self.daemon.sources.stop()
        if self.daemon.policy is not None:
            self.daemon.policy.stop()
        _stop_cluster_ipam()
        self.meters.close()
        invoke.set_exec_root("")
        log.info("netplex daemon: stopped")


def start(conf: DaemonConfig, *, watch_timeout: int = 300) -> Running:
    """Open the sources, start the watches, bind the socket and serve (in threads).
    Raises `SourceError` or `OSError` (socket in use, say) when it cannot."""
    meters = metrics.create(conf.metrics_address)
    try:
        sources = daemon_source.connect(
            conf.source_mode(), kubeconfig=conf.kubeconfig, node_name=conf.node_name,
            on_request=meters.count_api_request, watch_timeout=watch_timeout,
        )
    except BaseException:
        meters.close()
        raise
    daemon = Daemon(conf, sources=sources, meters=meters, policy=_policy_engine(conf, sources, meters, watch_timeout))
    try:
        server = daemon_server.Server(conf.socket_path, daemon)
    except BaseException:
        sources.stop()
        meters.close()
        raise
    # The shim's DEL fallback reads the daemon's config from here; it stays after exit.
    store.atomic_write(shim.snapshot_path(conf.socket_path), json.dumps(dict(conf.meta)).encode(), mode=0o600)
    sweep.sweep_cni_dir(str(conf.meta.get("cniDir") or config.DEFAULT_CNI_DIR))  # what a killed daemon left
    for name, size in _cache_sizes(sources).items():
        meters.watch_cache_size(name, size)
    meters.time_delegates()
    invoke.set_exec_root(conf.chroot_dir)  # exec'd delegates see the node's files (Multus's chrootDir)
    _warm_up()
    if conf.hotplug and isinstance(sources, daemon_source.KubeSources):
        daemon.hotplug = _start_hotplug(conf, daemon, sources)
    sources.start()
    if daemon.policy is not None:
        daemon.policy.start()
    _start_cluster_ipam(conf, sources)
    server.start()
    log.info(
        "netplex daemon: serving on %s (%s, node %r, %d workers)",
        conf.socket_path, conf.source_mode(), conf.node_name, conf.concurrency,
    )
    return Running(daemon, server, meters)


def main(argv: list[str]) -> int:
    """`netplex daemon --config FILE`: serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="netplex daemon", description="the node daemon the netplex shim talks to")
    parser.add_argument("--config", required=True, metavar="FILE", help="the daemon's JSON config")
    options = parser.parse_args(argv)
    try:
        conf = daemon_config.load(options.config)
    except DaemonConfigError as err:
        print(f"netplex daemon: {err}", file=sys.stderr)
        return 2
    _configure_logging(conf.meta)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        running = start(conf)
    except (SourceError, OSError) as err:
        log.error("netplex daemon: cannot start: %s", err)
        return 1
    while not stop.wait(3600):
        pass
    running.stop()
    return 0


def _start_hotplug(
    conf: DaemonConfig, daemon: Daemon, sources: daemon_source.KubeSources
) -> hotplug_reconciler.Reconciler:
    """meta/hotplug on the pod watch, with the daemon's locks, metrics and event sink."""
    cni_dir = conf.meta.get("cniDir") or config.DEFAULT_CNI_DIR
    source = daemon_source.CachedSource(sources.kube, pods=sources.pods, attachments=sources.attachments)
    reconciler = hotplug_reconciler.Reconciler(
        cni_dir=str(cni_dir), pods=sources.pods, source=source, hold=daemon.hold_sandbox,
        sink=getattr(daemon, "events", None), count=daemon.meters.count_hotplug,
    )
    reconciler.start()
    sources.pods.subscribe(reconciler.pod_changed)
    return reconciler
def _policy_engine(
    conf: DaemonConfig, sources: daemon_source.Sources, meters: metrics.Metrics, watch_timeout: int
) -> PolicyEngine | None:
    """MultiNetworkPolicy enforcement: with Kubernetes only (thin mode and local
    manifests cannot watch)."""
    if not isinstance(sources, daemon_source.KubeSources):
        return None
    from meta.k8s import Kube
    from meta.policy.engine import PolicyEngine

    if not isinstance(sources.kube, Kube):
        return None
    cni_dir = conf.meta.get("cniDir") or config.DEFAULT_CNI_DIR
    return PolicyEngine(sources.kube, cni_dirs=[str(cni_dir)], meters=meters, watch_timeout=watch_timeout)


def _warm_up() -> None:
    """Import the built-in delegates now, not in the first pod's ADD."""
    from delegates import registry

    for plugin_type in sorted(registry.BUILTIN_TYPES):
        registry.lookup(plugin_type)


def _start_cluster_ipam(conf: DaemonConfig, sources: daemon_source.Sources) -> None:
    """netplex-ipam's reconciler, on the node's pod watch cache (Kubernetes modes only)."""
    pods = sources.pods if isinstance(sources, daemon_source.KubeSources) else None
    if pods is None:
        return
    from delegates.ipam.cluster import reconcile

    def live_pods() -> dict[tuple[str, str], str] | None:
        return {(pod.namespace, pod.name): pod.uid for pod in pods.items()} if pods.synced else None

    reconcile.start(node=conf.node_name, kubeconfig=conf.kubeconfig, live_pods=live_pods)


def _stop_cluster_ipam() -> None:
    from delegates.ipam.cluster import reconcile

    reconcile.stop()


def _cache_sizes(sources: daemon_source.Sources) -> dict[str, Callable[[], int]]:
    def size_of(name: str) -> Callable[[], int]:
        return lambda: sources.sizes().get(name, 0)

    return {name: size_of(name) for name in sources.sizes()}


def _peek_version(stdin: bytes) -> str:
    try:
        found = json.loads(stdin).get("cniVersion")
    except (ValueError, AttributeError):
        found = None
    return found if isinstance(found, str) and version.is_supported(found) else version.CURRENT_VERSION


def _pod_of(env: Mapping[str, str]) -> str:
    pairs = dict(part.split("=", 1) for part in env.get("CNI_ARGS", "").split(";") if "=" in part)
    name = pairs.get("K8S_POD_NAME", "")
    return f"{pairs.get('K8S_POD_NAMESPACE', 'default')}/{name}" if name else "-"


def _configure_logging(meta: Mapping[str, Any]) -> None:
    skel.configure_logging(meta, default_level="info", log_format=LOG_FORMAT)
    skel.accept_log_file()  # the daemon's own config was checked at load


if __name__ == "__main__":  # `python -m meta.daemon --config FILE`, until the CLI wires `netplex daemon`
    sys.exit(main(sys.argv[1:]))
