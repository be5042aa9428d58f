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
from typing import Any

from cni import skel, store, version
from cni.errors import CniError, Code
from meta import config, daemon_config, daemon_lock, daemon_server, daemon_source, metrics, plugin, shim, sweep
from meta.daemon_config import DaemonConfig, DaemonConfigError
from meta.source import SourceError

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
    ) -> None:
        self.conf = conf
        self.sources = sources
        self.meters = meters or metrics.Metrics()
        self._clock = clock
        self._workers = threading.BoundedSemaphore(conf.concurrency)
        self._sandboxes = _SandboxLocks()
        self._accepting = True

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def ready(self) -> bool:
        return self._accepting and self.sources.ready

    def stop_accepting(self) -> None:
        self._accepting = False

    def resync(self, timeout: float) -> bool:
        return self.sources.resync(timeout)

    def handle_cni(self, request: Mapping[str, Any]) -> tuple[int, Any]:
        """One shim request -> (exit code, output document or None), as the plugin would
        have printed it. Never raises."""
        started = self._clock()
        env = {str(key): str(value) for key, value in dict(request.get("env") or {}).items()}
        stdin = json.dumps(shim.merge_config(dict(request.get("config") or {}), self.conf.meta)).encode()
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
            with self._admitted(args, conf, started + conf.add_timeout) as remaining:
                conf = conf.model_copy(update={"add_timeout": remaining})
                factory = self.sources.for_request(conf, pod_uid=args.cni_args.get("K8S_POD_UID", ""))
                return plugin.add(conf, args, source_factory=factory)

        def delete(args: skel.CmdArgs) -> None:
            conf = config.load_meta_conf(args.stdin)
            with self._admitted(args, conf, started + conf.add_timeout):
                plugin.delete(conf, args)

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

        return skel.Plugin(add=add, delete=delete, check=check, status=status, gc=gc, about="netplex")

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
        self.daemon.sources.stop()
        self.meters.close()
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
    daemon = Daemon(conf, sources=sources, meters=meters)
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
    _warm_up()
    sources.start()
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


def _warm_up() -> None:
    """Import the built-in delegates now, not in the first pod's ADD."""
    from delegates import registry

    for plugin_type in sorted(registry.BUILTIN_TYPES):
        registry.lookup(plugin_type)


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
