"""Persistent IPs: the NPWG v1.3 `IPAMClaim` (k8s.cni.cncf.io/v1alpha1).

A selection element's `ipam-claim-reference` names a claim in the pod's namespace (netplex
hands it to the IPAM as `args.cni["ipam-claim-reference"]`). The address then belongs to
the claim:
- the first pod gets an address from its node's block as usual, recorded locally as held
  by the claim, and the claim's `status.ips` (CIDR strings) and `status.ownerPod` record
  it: one status write, conditional on the claim's resourceVersion;
- a later pod with the same claim, on any node, gets `status.ips` back. A node that uses
  an address of another node's block records it as `foreign`: it never allocates from it;
- DEL of such a pod keeps the address (the owner node's record stays, held by the claim);
  the owner releases it once the claim is gone (DEL, GC and the daemon's reconciler ask).

A failed or lost status write keeps the local record held by the claim, so a retried ADD
finds it again and no other pod can get the address meanwhile. Must not import meta."""

from __future__ import annotations

import copy
import ipaddress
import logging
from typing import Any

from cni.errors import CniError, Code
from cni.result import IPAddress
from delegates.ipam.cluster import blocks
from delegates.ipam.cluster.config import ClusterConfig, PoolRange
from delegates.ipam.cluster.kubeapi import Client, Conflict, NotFound
from delegates.ipam.cluster.records import Record

log = logging.getLogger(__name__)

STATUS_RETRIES = 8


def claim_key(conf: ClusterConfig) -> str:
    return f"{conf.pod_namespace or 'default'}/{conf.claim}"


def read(api: Client, key: str) -> dict[str, Any]:
    """The claim `namespace/name`; error 11 when it does not exist (yet)."""
    namespace, _, name = key.partition("/")
    try:
        return api.get(blocks.CLAIMS, name, namespace=namespace)
    except NotFound as exc:
        raise CniError(
            Code.TRY_AGAIN_LATER, f'args.cni.ipam-claim-reference: IPAMClaim "{key}" does not exist'
        ) from exc


def uid_of(claim: dict[str, Any]) -> str:
    return str(claim.get("metadata", {}).get("uid", ""))


def address_in(claim: dict[str, Any], pool_range: PoolRange) -> IPAddress | None:
    """The claim's recorded address inside `pool_range`'s subnet, if any."""
    status = claim.get("status")
    ips = status.get("ips") if isinstance(status, dict) else None
    for text in ips if isinstance(ips, list) else []:
        try:
            ip = ipaddress.ip_interface(str(text)).ip
        except ValueError:
            continue
        if pool_range.contains(ip):
            return ip
    return None


def record_address(
    api: Client, key: str, claim: dict[str, Any], *, ip: IPAddress, prefix: int, pod: str
) -> IPAddress:
    """Write `ip` into the claim's status; the address the claim ends up with (another's,
    when a concurrent ADD on another node recorded one first)."""
    namespace, _, name = key.partition("/")
    current = claim
    for _ in range(STATUS_RETRIES):
        updated = copy.deepcopy(current)
        status = updated.setdefault("status", {})
        ips = [text for text in status.get("ips") or [] if isinstance(text, str)]
        ips.append(f"{ip}/{prefix}")
        status["ips"] = ips
        status["ownerPod"] = pod
        try:
            api.replace(blocks.CLAIMS, updated, namespace=namespace, subresource="status")
            return ip
        except Conflict:
            current = api.get(blocks.CLAIMS, name, namespace=namespace)
            if uid_of(current) != uid_of(claim):
                raise CniError(Code.TRY_AGAIN_LATER, f'IPAMClaim "{key}" was replaced during the ADD') from None
            family = ipaddress.ip_address(ip).version
            theirs = [
                found for text in current.get("status", {}).get("ips") or []
                if (found := _ip(text)) is not None and found.version == family
            ]
            if theirs:
                return theirs[0]
    raise CniError(Code.TRY_AGAIN_LATER, f'IPAMClaim "{key}": status kept changing under {STATUS_RETRIES} writes')


def gone(api: Client, record: Record) -> bool:
    """True when the claim holding `record` no longer exists (or was replaced)."""
    namespace, _, name = record.claim.partition("/")
    try:
        claim = api.get(blocks.CLAIMS, name, namespace=namespace)
    except NotFound:
        return True
    return bool(record.claim_uid) and uid_of(claim) != record.claim_uid


def adopt(api: Client, block_net: Any, pool_range: PoolRange) -> list[tuple[IPAddress, str, str]]:
    """(address, claim key, claim uid) of every claim holding an address in `block_net`:
    what a node taking over a gone node's block must keep."""
    held: list[tuple[IPAddress, str, str]] = []
    for claim in api.list(blocks.CLAIMS):
        ip = address_in(claim, pool_range)
        if ip is not None and ip in block_net:
            meta = claim.get("metadata", {})
            held.append((ip, f"{meta.get('namespace', '')}/{meta.get('name', '')}", uid_of(claim)))
    return held


def _ip(text: Any) -> IPAddress | None:
    try:
        return ipaddress.ip_interface(str(text)).ip
    except ValueError:
        return None
