"""Allocation and release: one address per range for an attachment, from the node's own
blocks, under the pool's local lock.

ADD, per range: the attachment's existing record (a repeated ADD gets the same address);
else, with an IPAMClaim, the claim's address (claims.py); else the first free address of
the node's blocks; when they are full, a new block (ownership.claim_block), then a gone
node's block (ownership.reclaim_block); else error 11. All or nothing across ranges.

API traffic of an ADD in the steady state (the node holds a block with room): none in a
daemon, which caches its block list; one list in an exec'd plugin. Writes: one create
per new block (a /28 serves 16 addresses), one status write per new claim.

Release (DEL, GC, the reconciler): an attachment's record goes, except that a claim's
address stays held by the claim until the claim is gone. Must not import meta."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging

from cni import skel
from cni.errors import CniError, Code
from cni.result import IPAddress, IPConfig
from delegates.ipam.cluster import blocks, claims
from delegates.ipam.cluster.config import ClusterConfig, PoolRange
from delegates.ipam.cluster.kubeapi import ApiError, Client
from delegates.ipam.cluster.ownership import Owner
from delegates.ipam.cluster.records import Record, Records, pools_of

log = logging.getLogger(__name__)

MAX_ROUNDS = 4


@dataclasses.dataclass(frozen=True)
class Node:
    """What allocating needs: the node's name, its API client and its block cache."""

    name: str
    api: Client
    owner: Owner


def allocate_all(conf: ClusterConfig, args: skel.CmdArgs, node: Node) -> list[IPConfig]:
    made: list[tuple[Records, Record]] = []
    configs: list[IPConfig] = []
    try:
        for pool_range in conf.ranges:
            pool = blocks.pool_name(conf.network_name, pool_range.subnet)
            recs = Records(conf.data_dir, node.name, pool)
            with recs.locked():
                recs.remove_stale_temporaries()  # a killed writer's: under the lock none is live
                record, new = _one(conf, args, node, pool_range=pool_range, pool=pool, recs=recs)
            if new:
                made.append((recs, record))
            address = ipaddress.ip_interface(f"{record.ip}/{pool_range.subnet.prefixlen}")
            configs.append(IPConfig(address=address, gateway=pool_range.gateway))
    except BaseException:
        for recs, record in made:
            if not record.claim:  # a claim's address stays the claim's
                with recs.locked():
                    recs.release(record.ip)
        raise
    return configs


def _one(
    conf: ClusterConfig, args: skel.CmdArgs, node: Node, *, pool_range: PoolRange, pool: str, recs: Records
) -> tuple[Record, bool]:
    existing = recs.all()
    for record in existing:
        if record.attached(args.container_id, args.ifname) and pool_range.contains(record.ip):
            return record, False
    base = Record(
        ip=pool_range.start, network=conf.network, container_id=args.container_id, ifname=args.ifname,
        pod=f"{conf.pod_namespace}/{conf.pod_name}" if conf.pod_name else "", uid=conf.pod_uid,
    )
    if conf.claim:
        return _with_claim(
            conf, node, pool_range=pool_range, pool=pool, recs=recs, base=base, existing=existing
        ), True
    return _free(conf, node, pool_range=pool_range, pool=pool, recs=recs, base=base), True


def _free(
    conf: ClusterConfig, node: Node, *, pool_range: PoolRange, pool: str, recs: Records, base: Record
) -> Record:
    node.owner.ensure_pool(pool, pool_range, conf.network_name)
    for _ in range(MAX_ROUNDS):
        taken = recs.taken()
        for block in node.owner.owned(pool):
            for ip in blocks.addresses(pool_range, block):
                if ip not in taken and recs.reserve(record := dataclasses.replace(base, ip=ip)):
                    return record
        if node.owner.claim_block(pool, pool_range) is not None:
            continue
        reclaimed = node.owner.reclaim_block(pool, pool_range)
        if reclaimed is None:
            break
        for ip, key, uid in claims.adopt(node.api, reclaimed, pool_range):
            recs.reserve(Record(ip=ip, network=conf.network, claim=key, claim_uid=uid))
    raise CniError(
        Code.TRY_AGAIN_LATER,
        f"{pool_range.where}: no free address in {pool_range}: this node's blocks are full and every "
        f"/{pool_range.block_prefix} block of pool {pool!r} belongs to another node",
    )


def _with_claim(
    conf: ClusterConfig, node: Node, *, pool_range: PoolRange, pool: str, recs: Records, base: Record,
    existing: list[Record],
) -> Record:
    key = claims.claim_key(conf)
    claim = claims.read(node.api, key)
    uid = claims.uid_of(claim)
    base = dataclasses.replace(base, claim=key, claim_uid=uid)
    recorded = claims.address_in(claim, pool_range)
    held = [r for r in existing if r.claim == key and pool_range.contains(r.ip)]
    for stale in [r for r in held if r.claim_uid != uid or (recorded is not None and r.ip != recorded)]:
        recs.release(stale.ip)  # an older claim of that name, or a superseded failed write
        held.remove(stale)
    if recorded is None and held:
        record = dataclasses.replace(base, ip=held[0].ip)
        recs.replace(record)
        recorded = claims.record_address(
            node.api, key, claim, ip=record.ip, prefix=pool_range.subnet.prefixlen, pod=conf.pod_name
        )
        if recorded == record.ip:
            return record
        recs.release(record.ip)
    if recorded is None:
        record = _free(conf, node, pool_range=pool_range, pool=pool, recs=recs, base=base)
        recorded = claims.record_address(
            node.api, key, claim, ip=record.ip, prefix=pool_range.subnet.prefixlen, pod=conf.pod_name
        )
        if recorded == record.ip:
            return record
        recs.release(record.ip)  # another node recorded the claim's address first
    owned = any(recorded in block for block in node.owner.owned(pool))
    record = dataclasses.replace(base, ip=recorded, foreign=not owned)
    other = next((r for r in recs.all() if r.ip == recorded), None)
    if other is not None and other.claim != key:
        raise CniError(
            Code.TRY_AGAIN_LATER,
            f'IPAMClaim "{key}" holds {recorded}, but this node records it for {other.claim or other.container_id}',
        )
    if other is not None:
        recs.replace(record)
    elif not recs.reserve(record):
        raise CniError(Code.TRY_AGAIN_LATER, f"{recorded} of IPAMClaim {key!r} is being recorded concurrently")
    return record


def release(recs: Records, record: Record, api: Client | None) -> None:
    """An attachment is done with `record` (caller holds the lock)."""
    if not record.claim:
        recs.release(record.ip)
        return
    if record.foreign or _claim_gone(api, record):
        recs.release(record.ip)
        return
    recs.replace(dataclasses.replace(record, container_id="", ifname="", pod="", uid=""))


def delete(conf: ClusterConfig, container_id: str, ifname: str, api: Client | None) -> list[IPAddress]:
    """Release the attachment's records, under whichever node they are (DEL)."""
    released: list[IPAddress] = []
    for node_dir, pool in pools_of(conf.data_dir):
        recs = Records(conf.data_dir, node_dir, pool)
        if recs.has_temporaries():  # a process killed mid-write left one: every DEL may tidy it
            with recs.locked():
                recs.remove_stale_temporaries()
        if not any(r.attached(container_id, ifname) for r in recs.all()):
            continue
        with recs.locked():
            for record in recs.all():
                if record.attached(container_id, ifname) and record.network in ("", conf.network):
                    release(recs, record, api)
                    released.append(record.ip)
    return released


def gc(conf: ClusterConfig, node: str, valid: set[tuple[str, str]], api: Client | None) -> list[IPAddress]:
    """Release this node's records of `conf.network` whose attachment is not valid, and
    claim-held addresses whose claim is gone (CNI GC)."""
    released: list[IPAddress] = []
    for node_dir, pool in pools_of(conf.data_dir, node):
        recs = Records(conf.data_dir, node_dir, pool)
        with recs.locked():
            recs.remove_stale_temporaries()
            for record in recs.all():
                if record.network not in ("", conf.network):
                    continue
                if record.container_id and (record.container_id, record.ifname) not in valid:
                    release(recs, record, api)
                    released.append(record.ip)
                elif not record.container_id and record.claim and _claim_gone(api, record):
                    recs.release(record.ip)
                    released.append(record.ip)
    return released


def _claim_gone(api: Client | None, record: Record) -> bool:
    if api is None:
        return False
    try:
        return claims.gone(api, record)
    except ApiError as exc:  # unknown: keep the address, a later pass decides
        log.warning("netplex-ipam: cannot check IPAMClaim %s: %s", record.claim, exc.message)
        return False
