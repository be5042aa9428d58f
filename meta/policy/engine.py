"""The policy engine of `netplex daemon`: keeps every selected pod interface of this node
enforced, from the watch caches (sources.py) and the attachment cache on disk.

- Which pods are local, and their interfaces, networks, addresses and netns: the
  attachment cache (`<cniDir>/cache`, every cniDir the daemon has served), the same
  record DEL uses. Their labels: the cluster-wide pod cache (one live GET for a pod the
  watch has not delivered yet).
- Every change (a policy, a namespace, a pod anywhere) sets a flag; one reconcile thread
  recompiles every local pod's ruleset (compile.py: pure, milliseconds) and, for each pod
  whose ruleset changed, runs ONE nft transaction in its netns: a set update when only
  peers changed, else delete-and-rebuild of the table. A pod no policy selects has no
  table. The kernel applies a transaction atomically, so no packet sees half a ruleset.
- ADD: `enforce_sandbox` runs before the daemon answers the ADD, so a pod's interfaces
  are enforced before its containers start.
- Start (a daemon restart): the first reconcile replaces every local pod's table (or
  removes it when nothing selects the pod any more). Connection tracking is never
  flushed, so established flows go on through `ct state established` at once.

Failures of one pod (nft refused, netns busy) are logged and counted and retried on the
next pass (at most RETRY seconds later); they never stop the others."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from cni.errors import CniError, Code
from meta import cache
from meta.policy import compile as rules
from meta.policy import model, nft, report
from meta.policy.select import Address, World
from meta.policy.sources import PolicyApi, PolicyCaches
from meta.source import Pod, SourceError

log = logging.getLogger(__name__)

RETRY = 1.0  # seconds before a failed pod is tried again
PARALLEL = 4  # nft transactions (child processes) at once during a reconcile
Apply = Callable[[str, list[dict[str, Any]]], None]


class Meters(Protocol):
    """What the engine reports (meta.metrics.Metrics implements it)."""

    def observe_policy_sync(self, seconds: float) -> None: ...

    def count_policy_error(self) -> None: ...

    def observe_policy_rules(self, count: int) -> None: ...


class _NoMeters:
    def observe_policy_sync(self, seconds: float) -> None:
        """Not measured."""

    def count_policy_error(self) -> None:
        """Not counted."""

    def observe_policy_rules(self, count: int) -> None:
        """Not reported."""


@dataclasses.dataclass
class _Sandbox:
    """One local sandbox: what is in its netns now."""

    netns: str
    cni_dir: str
    ruleset: rules.Ruleset | None  # None: unknown (not yet programmed since start)


@dataclasses.dataclass(frozen=True)
class _Local:
    entry: cache.CacheEntry
    cni_dir: str
    interfaces: tuple[rules.LocalInterface, ...]


class PolicyEngine:
    def __init__(
        self,
        kube: PolicyApi,
        *,
        cni_dirs: Iterable[str],
        meters: Meters | None = None,
        apply: Apply = nft.apply,
        watch_timeout: int = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.meters: Meters = meters or _NoMeters()
        self._apply = apply
        self._clock = clock
        self._cni_dirs = dict.fromkeys(cni_dirs)
        self._dirty = threading.Event()
        self._dirty_since: float | None = None
        self._stopping = threading.Event()
        self._lock = threading.RLock()  # one reconcile or ADD enforcement at a time
        self._sandboxes: dict[str, _Sandbox] = {}
        self._fresh_pods: dict[tuple[str, str], Pod] = {}  # read at ADD, before the watch has them
        self._parsed: dict[tuple[str, str], tuple[object, model.Policy | None]] = {}  # by the cached object
        self._thread: threading.Thread | None = None
        self.caches = PolicyCaches(kube, on_change=self.kick, watch_timeout=watch_timeout)
        self.rules_programmed = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.caches.start()
        self._thread = threading.Thread(target=self._run, name="policy-engine", daemon=True)
        self._thread.start()
        self.kick()

    def stop(self) -> None:
        self._stopping.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.caches.stop()

    @property
    def synced(self) -> bool:
        return self.caches.synced

    def kick(self) -> None:
        """Something changed: reconcile soon."""
        if self._dirty_since is None:
            self._dirty_since = self._clock()
        self._dirty.set()

    def add_cni_dir(self, cni_dir: str) -> None:
        if cni_dir not in self._cni_dirs:
            self._cni_dirs[cni_dir] = None
            self.kick()

    # -- the CNI path ------------------------------------------------------------------

    def enforce_sandbox(self, cni_dir: str, container_id: str, ifname: str, *, timeout: float) -> None:
        """Program the new sandbox's rules now (the daemon's ADD, after the delegates).
        Error 11 when the caches cannot be synced in time, 999 when nft fails."""
        self.add_cni_dir(cni_dir)
        if not self.caches.wait_synced(timeout, clock=self._clock):
            raise CniError(Code.TRY_AGAIN_LATER, "network policy: the MultiNetworkPolicy watch is not synced yet")
        entry = cache.read(cni_dir, container_id, ifname)
        if entry is None or not entry.pod_name or not len(self.caches.policies):
            return
        with self._lock:
            world = self._world()
            local = _local(entry, cni_dir)
            pod = self._pod_of(entry)
            if pod is None:
                try:
                    pod = self.kube.get_pod(entry.pod_namespace, entry.pod_name)
                except SourceError as err:
                    raise CniError(Code.TRY_AGAIN_LATER, f"network policy: cannot read the pod: {err}") from err
                self._fresh_pods[(pod.namespace, pod.name)] = pod
                world = self._world()
            try:
                self._enforce(world, local, pod)
            except nft.NftError as err:
                self.meters.count_policy_error()
                raise CniError(Code.INTERNAL, f"network policy: cannot program {entry.pod}: {err}") from err

    def forget(self, cni_dir: str, container_id: str) -> None:
        """The sandbox was DELeted: nothing to enforce there any more."""
        with self._lock:
            self._sandboxes.pop(container_id, None)
        report.remove(cni_dir, container_id)

    # -- reconciling -------------------------------------------------------------------

    def reconcile(self) -> int:
        """One pass over every local sandbox; returns how many failed."""
        with self._lock:
            self.caches.follow_pods()
            if not self.caches.synced:
                return 0
            locals_ = self._locals()
            world = self._world(locals_)
            started = self._clock()
            seen = {local.entry.container_id for local in locals_}
            work = [(local, pod) for local in locals_ if (pod := self._pod_of(local.entry)) is not None]
            # (a pod not in the API yet keeps what it has.) Each transaction is a child
            # process: a few run at once, so one slow pod does not hold up the rest.
            with concurrent.futures.ThreadPoolExecutor(PARALLEL, thread_name_prefix="policy-nft") as pool:
                outcomes = list(pool.map(lambda item: self._enforce_logged(world, *item), work))
            changed = sum(1 for outcome in outcomes if outcome is True)
            failures = sum(1 for outcome in outcomes if outcome is None)
            for gone in set(self._sandboxes) - seen:
                self.forget(self._sandboxes[gone].cni_dir, gone)
            for cni_dir in self._cni_dirs:
                for container_id in report.recorded(cni_dir):
                    if container_id not in seen:
                        report.remove(cni_dir, container_id)
            live = {(p.namespace, p.name) for p in world.pods}
            for key in [key for key in self._fresh_pods if key in live]:
                del self._fresh_pods[key]
            self.rules_programmed = sum(s.ruleset.rules for s in self._sandboxes.values() if s.ruleset)
            self.meters.observe_policy_rules(self.rules_programmed)
            if changed or failures:
                log.info("network policy: %d pod(s) of %d reprogrammed, %d failed, in %.1f ms",
                         changed, len(locals_), failures, (self._clock() - started) * 1000)
            return failures

    def _enforce_logged(self, world: World, local: _Local, pod: Pod) -> bool | None:
        """`_enforce`, with failures logged and counted: None when it failed."""
        try:
            return self._enforce(world, local, pod)
        except nft.NetnsGone:
            self._sandboxes.pop(local.entry.container_id, None)
            return False
        except nft.NftError as err:
            self.meters.count_policy_error()
            log.warning("network policy: %s: %s", local.entry.pod, err)
            return None

    def _enforce(self, world: World, local: _Local, pod: Pod) -> bool:
        """Bring one sandbox's table to what `world` says; True when nft ran."""
        entry = local.entry
        wanted = rules.compile_pod(world, pod, local.interfaces)
        known = self._sandboxes.get(entry.container_id)
        if known is not None and known.ruleset is not None:
            if known.ruleset.empty and wanted.empty:
                commands: list[dict[str, Any]] | None = []
            else:
                commands = wanted.set_update_commands(known.ruleset) if not known.ruleset.empty else None
        else:
            commands = None
        if commands is None:
            commands = wanted.replace_commands()
        if commands:
            try:
                self._apply(entry.netns, commands)
            except nft.NftError:  # what is in the kernel is unknown now: replace it next time
                self._sandboxes[entry.container_id] = _Sandbox(entry.netns, local.cni_dir, None)
                raise
        self._sandboxes[entry.container_id] = _Sandbox(entry.netns, local.cni_dir, wanted)
        if known is None or known.ruleset is None or known.ruleset.policies != wanted.policies:
            if wanted.policies:
                report.write(local.cni_dir, entry.container_id, wanted.policies)
            else:
                report.remove(local.cni_dir, entry.container_id)
        return bool(commands)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait()
            if self._stopping.is_set():
                return
            self._dirty.clear()
            since, self._dirty_since = self._dirty_since, None
            try:
                failures = self.reconcile()
            except Exception:  # a bug must not end enforcement silently
                log.exception("network policy: reconcile failed")
                self.meters.count_policy_error()
                failures = 1
            if since is not None and not failures and self.caches.synced:
                self.meters.observe_policy_sync(self._clock() - since)
            if failures:
                self._stopping.wait(RETRY)
                self.kick()

    def _world(self, locals_: list[_Local] | None = None) -> World:
        policies = []
        for obj in self.caches.policies.items():
            parsed = self._parsed.get((obj.namespace, obj.name))
            if parsed is None or parsed[0] is not obj:
                try:
                    parsed = (obj, model.parse(obj))
                except model.PolicyError as err:
                    log.warning("network policy: %s; ignored", err)
                    parsed = (obj, None)
                self._parsed[(obj.namespace, obj.name)] = parsed
            if parsed[1] is not None:
                policies.append(parsed[1])
        current = {(obj.namespace, obj.name) for obj in self.caches.policies.items()}
        self._parsed = {key: value for key, value in self._parsed.items() if key in current}
        pods_cache = self.caches.pods
        pods = {(p.namespace, p.name): p for p in (pods_cache.items() if pods_cache is not None else [])}
        for key, pod in self._fresh_pods.items():
            pods.setdefault(key, pod)
        namespaces = {ns.name: ns for ns in self.caches.namespaces.items()}
        local_addresses: dict[str, dict[str, list[Address]]] = {}
        for local in self._locals() if locals_ is None else locals_:
            for attachment in local.entry.attachments:
                found = local_addresses.setdefault(local.entry.pod, {}).setdefault(attachment.network, [])
                found.extend(_addresses(attachment.result))
        return World(policies=policies, namespaces=namespaces, pods=list(pods.values()),
                     local_addresses=local_addresses)

    def _locals(self) -> list[_Local]:
        found = []
        for cni_dir in list(self._cni_dirs):
            for entry in cache.list_entries(cni_dir):
                if entry.pod_name and entry.netns:
                    found.append(_local(entry, cni_dir))
        return found

    def _pod_of(self, entry: cache.CacheEntry) -> Pod | None:
        pods = self.caches.pods
        pod = pods.get(entry.pod_namespace, entry.pod_name) if pods is not None else None
        if pod is None:
            pod = self._fresh_pods.get((entry.pod_namespace, entry.pod_name))
        if pod is not None and entry.pod_uid and pod.uid and pod.uid != entry.pod_uid:
            return None  # another pod of that name: not this sandbox's
        if pod is None and not len(self.caches.policies):
            return Pod(namespace=entry.pod_namespace, name=entry.pod_name)  # nothing can select it
        return pod


def _local(entry: cache.CacheEntry, cni_dir: str) -> _Local:
    interfaces = tuple(
        rules.LocalInterface(ifname=a.ifname, network=a.network)
        for a in entry.attachments
        if not a.is_cluster_network and a.state == "added"
    )
    return _Local(entry=entry, cni_dir=cni_dir, interfaces=interfaces)


def _addresses(result: dict[str, Any] | None) -> list[Address]:
    found: list[Address] = []
    for ip in (result or {}).get("ips", []):
        try:
            found.append(ipaddress.ip_interface(str(ip.get("address", ""))).ip)
        except (ValueError, AttributeError):
            continue
    return found
