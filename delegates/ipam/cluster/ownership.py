"""Which blocks a node owns, and taking more: the only API writes of an ordinary ADD,
and only when the node's blocks are full.

- `ensure_pool`: the pool object exists with our block size (create; on 409 read it and
  compare). Once per pool per process.
- `owned`: the node's blocks of a pool (one labelled list, cached in the process for
  `ttl` seconds: a daemon lists once per pool, an exec'd plugin once per call). With the
  API unreachable, a daemon keeps allocating from the blocks it last saw.
- `claim_block`: list the pool's blocks once, then create the first free candidate;
  AlreadyExists (409) means another node won it: try the next. A 409 for a block that
  turns out to be ours is our own create whose reply was lost. Any other failure is
  `kubeapi.ApiError` for the caller to report.
- `reclaim_block`: when every block is taken, take over one whose node is gone: its Node
  object does not exist and no pod is bound to that node name any more. The take-over is
  an update conditional on the block's resourceVersion, so two reclaimers cannot both win.
  Addresses IPAMClaims still hold in it are the new owner's to keep (see claims.adopt).

Thread-safe; must not import meta."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable

from cni.errors import CniError, Code
from cni.result import IPNetwork
from delegates.ipam.cluster import blocks
from delegates.ipam.cluster.config import PoolRange
from delegates.ipam.cluster.kubeapi import Client, Conflict, NotFound, Unavailable

log = logging.getLogger(__name__)

DEFAULT_TTL = 300.0


class Owner:
    """One node's view of its blocks, on one API server."""

    def __init__(
        self, api: Client, node: str, *, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.api = api
        self.node = node
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._pools: dict[str, int] = {}  # verified pools -> block prefix
        self._owned: dict[str, tuple[float, list[IPNetwork]]] = {}

    def ensure_pool(self, pool: str, pool_range: PoolRange, network_name: str) -> None:
        with self._lock:
            if self._pools.get(pool) == pool_range.block_prefix:
                return
        wanted = blocks.pool_object(pool, pool_range, network_name)
        try:
            self.api.create(blocks.POOLS, wanted)
            stored = pool_range.block_prefix
        except Conflict:
            try:
                found = self.api.get(blocks.POOLS, pool)
            except NotFound as exc:  # a conflict, but no such pool: it changed under us
                raise CniError(
                    Code.TRY_AGAIN_LATER, f"netplex-ipam: pool {pool!r} is being changed; try again"
                ) from exc
            stored = int(found.get("spec", {}).get("blockSize", 0))
        if stored != pool_range.block_prefix:
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"ipam.block_size: pool {pool!r} has blocks of /{stored}, this config asks for "
                f"/{pool_range.block_prefix} (every config of one subnet must agree)",
            )
        with self._lock:
            self._pools[pool] = stored

    def owned(self, pool: str) -> list[IPNetwork]:
        with self._lock:
            cached = self._owned.get(pool)
            if cached is not None and self._clock() - cached[0] < self._ttl:
                return list(cached[1])
        try:
            items = self.api.list(blocks.BLOCKS, label_selector=blocks.block_selector(pool, self.node))
        except Unavailable:
            if cached is not None:  # the API is down: our blocks are still ours (only we give them up)
                return list(cached[1])
            raise
        mine = sorted(
            (net for item in items if blocks.owner(item) == self.node and (net := blocks.cidr(item)) is not None),
            key=lambda net: int(net.network_address),
        )
        with self._lock:
            self._owned[pool] = (self._clock(), mine)
        return list(mine)

    def forget(self, pool: str | None = None) -> None:
        """Drop the cached list (all pools when None): the next `owned` lists again."""
        with self._lock:
            if pool is None:
                self._owned.clear()
            else:
                self._owned.pop(pool, None)

    def claim_block(self, pool: str, pool_range: PoolRange) -> IPNetwork | None:
        """A newly created block of ours, or None when every candidate is taken."""
        taken = {
            net for item in self.api.list(blocks.BLOCKS, label_selector=blocks.block_selector(pool))
            if (net := blocks.cidr(item)) is not None
        }
        for candidate in blocks.candidate_blocks(pool_range, self.node):
            if candidate in taken or not any(True for _ in blocks.addresses(pool_range, candidate)):
                continue
            body = blocks.block_object(pool, candidate, self.node)
            try:
                self.api.create(blocks.BLOCKS, body)
            except Conflict:
                try:
                    existing = self.api.get(blocks.BLOCKS, body["metadata"]["name"])
                except NotFound:
                    continue  # created and deleted meanwhile: leave it to the next round
                if blocks.owner(existing) != self.node:
                    continue
            log.info("netplex-ipam: node %s claimed block %s of pool %s", self.node, candidate, pool)
            self._add_owned(pool, candidate)
            return candidate
        return None

    def reclaim_block(self, pool: str, pool_range: PoolRange) -> IPNetwork | None:
        """Take over a block of the range whose node is gone; None when there is none."""
        for item in self.api.list(blocks.BLOCKS, label_selector=blocks.block_selector(pool)):
            net, node = blocks.cidr(item), blocks.owner(item)
            if net is None or node == self.node or not any(True for _ in blocks.addresses(pool_range, net)):
                continue
            if not self.node_gone(node):
                continue
            taken = copy.deepcopy(item)
            taken["spec"]["node"] = self.node
            taken.setdefault("metadata", {}).setdefault("labels", {})[blocks.NODE_LABEL] = blocks.label_value(self.node)
            try:
                self.api.replace(blocks.BLOCKS, taken)  # carries the resourceVersion we read
            except (Conflict, NotFound):
                continue
            log.warning("netplex-ipam: node %s took over block %s of gone node %s", self.node, net, node)
            self._add_owned(pool, net)
            return net
        return None

    def node_gone(self, node: str) -> bool:
        """True when `node` has no Node object and no pod is bound to it."""
        try:
            self.api.get(blocks.NODES, node)
            return False
        except NotFound:
            pass
        return not self.api.list(blocks.PODS, field_selector=f"spec.nodeName={node}", limit=1)

    def _add_owned(self, pool: str, net: IPNetwork) -> None:
        with self._lock:
            stamp, nets = self._owned.get(pool, (self._clock(), []))
            if net not in nets:
                nets = sorted([*nets, net], key=lambda n: int(n.network_address))
            self._owned[pool] = (stamp, nets)
