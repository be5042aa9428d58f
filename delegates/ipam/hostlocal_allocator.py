"""host-local allocation: pick, reserve and release addresses of range sets in a Store.

The reference's rules (host-local `allocator.go`): one address per range set per
attachment; a requested address must lie in the set (between rangeStart and rangeEnd) and
not be its gateway; otherwise the next free address round-robin after the set's last
reserved one. An attachment that already holds an address of the set gets an error, as
the spec forbids a second ADD without a DEL.

Error codes (the reference returns plain errors; these are netplex's choices):
- 11 TRY_AGAIN_LATER: the range set is exhausted, or a requested address is held by
  another attachment (both clear up once some pod is deleted or GC runs).
- 7 INVALID_NETWORK_CONFIG: a requested address outside every range set, or a gateway.
- 100 ALREADY_ALLOCATED (plugin-specific, spec section "Error"): ADD again without DEL.

The caller holds the store lock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from cni.errors import CniError, Code
from cni.result import IPAddress, IPConfig
from delegates.ipam import hostlocal_ranges as ranges
from delegates.ipam.hostlocal_config import Request
from delegates.ipam.hostlocal_store import Store

__all__ = ["ALREADY_ALLOCATED", "allocate", "allocate_all"]

ALREADY_ALLOCATED = 100


def allocate(
    store: Store,
    range_set: ranges.RangeSet,
    *,
    index: int,
    container_id: str,
    ifname: str,
    request: Request | None,
) -> IPConfig:
    """Reserve one address of range set `index` for the attachment."""
    if request is not None:
        return _allocate_requested(
            store, range_set, index=index, container_id=container_id, ifname=ifname, request=request
        )
    existing = store.reservations()  # one read of the directory for both checks
    for held in existing:
        if held.held_by(container_id, ifname) and ranges.range_for(range_set, held.ip) is not None:
            raise CniError(
                ALREADY_ALLOCATED,
                f"{held.ip} has been allocated to {container_id} ({ifname}), duplicate allocation is not allowed",
            )
    taken = {r.ip for r in existing}
    for owner, ip in ranges.candidates(range_set, store.last_reserved(index)):
        if ip in taken:
            continue
        if store.reserve(ip, container_id=container_id, ifname=ifname, range_set=index):
            return _ip_config(owner, ip)
    raise CniError(
        Code.TRY_AGAIN_LATER, f"no IP addresses available in range set {index}: {ranges.describe(range_set)}"
    )


def allocate_all(
    store: Store,
    range_sets: Sequence[ranges.RangeSet],
    *,
    container_id: str,
    ifname: str,
    requests: Sequence[Request],
) -> list[IPConfig]:
    """One address per range set, requested ones where asked; all or nothing."""
    pending = list(requests)
    reserved: list[IPAddress] = []
    try:
        configs: list[IPConfig] = []
        for index, range_set in enumerate(range_sets):
            request = next((r for r in pending if ranges.range_for(range_set, r.ip) is not None), None)
            if request is not None:
                pending.remove(request)
            config = allocate(store, range_set, index=index, container_id=container_id, ifname=ifname, request=request)
            reserved.append(config.address.ip)
            configs.append(config)
        if pending:
            first = pending[0]
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"{first.where}: requested IP {first.ip} is not in any range set "
                f"({'; '.join(ranges.describe(rs) for rs in range_sets)})",
            )
    except BaseException:
        for ip in reserved:  # only what this call reserved, never an earlier ADD's addresses
            store.release_ip(ip)
        raise
    return configs


def _allocate_requested(
    store: Store,
    range_set: ranges.RangeSet,
    *,
    index: int,
    container_id: str,
    ifname: str,
    request: Request,
) -> IPConfig:
    owner = ranges.range_for(range_set, request.ip)
    if owner is None:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            f"{request.where}: requested IP {request.ip} is not in range set {ranges.describe(range_set)}",
        )
    if request.ip == owner.gateway:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{request.where}: requested IP {request.ip} is the gateway")
    if owner.is_reserved(request.ip):
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            f"{request.where}: requested IP {request.ip} is the network or broadcast address of {owner.subnet}",
        )
    if not store.reserve(request.ip, container_id=container_id, ifname=ifname, range_set=index):
        if any(r.ip == request.ip for r in store.held_by(container_id, ifname)):
            raise CniError(
                ALREADY_ALLOCATED,
                f"{request.ip} has been allocated to {container_id} ({ifname}), duplicate allocation is not allowed",
            )
        raise CniError(
            Code.TRY_AGAIN_LATER,
            f"requested IP address {request.ip} is not available in range set {ranges.describe(range_set)}",
        )
    return _ip_config(owner, request.ip)


def _ip_config(owner: ranges.IPRange, ip: IPAddress) -> IPConfig:
    return IPConfig(address=ipaddress.ip_interface(f"{ip}/{owner.subnet.prefixlen}"), gateway=owner.gateway)
