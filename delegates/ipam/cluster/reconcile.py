"""The daemon's cluster-level reconciler for netplex-ipam: frees the node's addresses
whose pod no longer exists, and claim-held addresses whose IPAMClaim was deleted.

The daemon already watches its node's pods; it hands `live_pods` (namespace/name -> uid
from that watch cache, or None while the cache is not synced) and the loop needs no cron.
A record is freed only when all of these hold, so a pod that is still starting keeps its
address:
- the cache is synced and does not hold the pod (or holds another pod of that name);
- the record is older than `grace` seconds (an ADD in flight for a pod the cache has not
  seen yet is younger), and the pod has been missing for `grace` seconds;
- a live GET of the pod answers 404 (or another uid). Any other answer keeps it.

`start()` is called by `netplex daemon` (meta/daemon.py); it also lends the IPAM the
daemon's node name and API client (context.use_daemon). Must not import meta."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from delegates.ipam.cluster import allocator, blocks, claims, context
from delegates.ipam.cluster.config import DEFAULT_DATA_DIR
from delegates.ipam.cluster.kubeapi import ApiError, Client, ConfigError, NotFound
from delegates.ipam.cluster.records import Record, Records, pools_of

log = logging.getLogger(__name__)

LivePods = Callable[[], dict[tuple[str, str], str] | None]
DEFAULT_INTERVAL = 30.0
DEFAULT_GRACE = 60.0
INTERVAL_ENV = "NETPLEX_IPAM_RECONCILE_INTERVAL"  # seconds; tuning knobs (tests shorten them)
GRACE_ENV = "NETPLEX_IPAM_RECONCILE_GRACE"

_running: Reconciler | None = None
_data_dirs: set[str] = {DEFAULT_DATA_DIR}
_dirs_lock = threading.Lock()


def note_data_dir(path: str) -> None:
    """An ADD used `path`: the reconciler looks there too."""
    with _dirs_lock:
        _data_dirs.add(path)


class Reconciler:
    def __init__(
        self, *, node: str, api: Client, live_pods: LivePods, interval: float = DEFAULT_INTERVAL,
        grace: float = DEFAULT_GRACE, data_dirs: tuple[str, ...] = (),
    ) -> None:
        self.node = node
        self._data_dirs = data_dirs  # () = every data dir an ADD of this process used
        self.api = api
        self._live_pods = live_pods
        self.interval = interval
        self.grace = grace
        self._missing: dict[tuple[str, str, str], float] = {}
        self._empty: dict[tuple[str, str], float] = {}  # (pool, block) -> first seen empty
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ipam-reconcile", daemon=True)
        self.passes = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:  # a bad pass must not end the loop
                log.exception("netplex-ipam: reconcile pass failed")

    def run_once(self) -> list[Record]:
        """One pass; the records it freed."""
        pods = self._live_pods()
        if pods is None:
            return []
        now = time.time()
        freed: list[Record] = []
        seen: set[tuple[str, str, str]] = set()
        with _dirs_lock:
            data_dirs = sorted(self._data_dirs or _data_dirs)
        for data_dir in data_dirs:
            for node_dir, pool in pools_of(data_dir, self.node):
                recs = Records(data_dir, node_dir, pool)
                for record in recs.all():
                    if self._stop.is_set():
                        return freed
                    if self._should_free(record, pods, now, seen, recs.directory) and self._free(recs, record):
                        freed.append(record)
                self._return_empty_blocks(recs, pool, now)
        self._missing = {key: stamp for key, stamp in self._missing.items() if key in seen}
        self.passes += 1
        return freed

    def _should_free(
        self, record: Record, pods: dict[tuple[str, str], str], now: float, seen: set[tuple[str, str, str]],
        directory: str,
    ) -> bool:
        if not record.container_id:
            return bool(record.claim) and self._claim_gone(record)
        if not record.pod or now - record.created < self.grace:
            return False
        namespace, _, name = record.pod.partition("/")
        uid = pods.get((namespace, name))
        if uid is not None and (not record.uid or not uid or uid == record.uid):
            return False
        key = (directory, str(record.ip), record.container_id)
        seen.add(key)
        first = self._missing.setdefault(key, now)
        if now - first < self.grace:
            return False
        return self._pod_gone(namespace, name, record.uid)

    def _free(self, recs: Records, record: Record) -> bool:
        with recs.locked():
            current = next((r for r in recs.all() if r.ip == record.ip), None)
            if current is None or current.container_id != record.container_id:
                return False
            allocator.release(recs, current, self.api)
        log.info(
            "netplex-ipam: reconciler freed %s (pod %s, claim %s)", record.ip, record.pod or "-", record.claim or "-"
        )
        return True

    def _return_empty_blocks(self, recs: Records, pool: str, now: float) -> None:
        """Give back blocks that stayed empty for `grace` seconds, keeping the node's first
        one, so churn does not leave a range carved up among nodes for good. Under the
        pool's lock, so no ADD of this node allocates in a block being given back."""
        owner = context.owner_of(self.api, self.node)
        try:
            with recs.locked():
                owned = owner.owned(pool)
                taken = recs.taken()
                empty = [block for block in owned[1:] if not any(ip in block for ip in taken)]
                for block in owned:
                    if block not in empty:
                        self._empty.pop((pool, str(block)), None)
                for block in empty:
                    first = self._empty.setdefault((pool, str(block)), now)
                    if now - first < self.grace:
                        continue
                    name = blocks.block_name(pool, block)
                    current = self.api.get(blocks.BLOCKS, name)
                    if blocks.owner(current) == self.node:
                        self.api.delete(
                            blocks.BLOCKS, name, resource_version=str(current["metadata"].get("resourceVersion", ""))
                        )
                        log.info("netplex-ipam: node %s gave back empty block %s of pool %s", self.node, block, pool)
                    self._empty.pop((pool, str(block)), None)
                    owner.forget(pool)
        except ApiError as exc:  # a later pass tries again
            owner.forget(pool)
            log.warning("netplex-ipam: cannot give back empty blocks of pool %s: %s", pool, exc.message)

    def _pod_gone(self, namespace: str, name: str, uid: str) -> bool:
        try:
            pod = self.api.get(blocks.PODS, name, namespace=namespace)
        except NotFound:
            return True
        except ApiError:
            return False
        return bool(uid) and str(pod.get("metadata", {}).get("uid", "")) != uid

    def _claim_gone(self, record: Record) -> bool:
        try:
            return claims.gone(self.api, record)
        except ApiError:
            return False


def start(
    *, node: str, kubeconfig: str, live_pods: LivePods, interval: float = DEFAULT_INTERVAL,
    grace: float = DEFAULT_GRACE,
) -> Reconciler | None:
    """Lend the IPAM the daemon's node and client, and start the loop (None when the
    daemon has no Kubernetes API: nothing to reconcile against)."""
    global _running  # noqa: PLW0603 - one daemon per process
    try:
        api = Client.from_kubeconfig(kubeconfig) if kubeconfig else Client.in_cluster()
    except (ConfigError, OSError) as exc:
        log.warning("netplex-ipam: no API client for the reconciler: %s", exc)
        return None
    context.use_daemon(node, api)
    interval = float(os.environ.get(INTERVAL_ENV) or interval)
    grace = float(os.environ.get(GRACE_ENV) or grace)
    _running = Reconciler(node=node, api=api, live_pods=live_pods, interval=interval, grace=grace)
    _running.start()
    return _running


def stop() -> None:
    global _running  # noqa: PLW0603
    if _running is not None:
        _running.stop()
        _running = None
    context.forget_daemon()
