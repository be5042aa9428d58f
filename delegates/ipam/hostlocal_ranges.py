"""host-local address ranges: parsing one range and a range set from config, and the
round-robin order in which free addresses are tried.

Rules follow the reference plugin (containernetworking/plugins host-local `range.go`,
`range_set.go`, `allocator.go`): the subnet must be a network address with room for hosts
(not /31, /32, /127, /128); the gateway defaults to the subnet's first address; rangeStart
defaults to the first address after the network address, rangeEnd to the last address
before the IPv4 broadcast (the very last address for IPv6); both are inclusive and must lie
inside the subnet. A range set is ranges of one family that do not overlap. Unlike the
reference, an IPv4 network or broadcast address is never handed out even when an explicit
rangeStart/rangeEnd includes it, and rangeStart must not come after rangeEnd.

Every error is a CniError 7 naming the key (`ipam.ranges.0.1.subnet`). No file access here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec

from cni.errors import CniError, Code
from cni.result import IPAddress, IPNetwork

__all__ = ["IPRange", "RangeSet", "candidates", "describe", "parse_range", "parse_range_set", "range_for"]


class IPRange(msgspec.Struct, frozen=True):
    """One range: addresses `start`..`end` (inclusive) of `subnet`, with its gateway."""

    subnet: IPNetwork
    start: IPAddress
    end: IPAddress
    gateway: IPAddress
    where: str  # the config key it came from, for error messages

    @property
    def family(self) -> int:
        return self.subnet.version

    def contains(self, ip: IPAddress) -> bool:
        """True if `ip` lies in `start`..`end` (the reference's Range.Contains)."""
        return ip.version == self.family and int(self.start) <= int(ip) <= int(self.end)

    def is_reserved(self, ip: IPAddress) -> bool:
        """Addresses never handed out: the gateway, the network address, IPv4 broadcast."""
        if ip in (self.gateway, self.subnet.network_address):
            return True
        return self.family == 4 and ip == self.subnet.broadcast_address

    def overlaps(self, other: IPRange) -> bool:
        if self.family != other.family:
            return False
        return int(self.start) <= int(other.end) and int(other.start) <= int(self.end)

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


RangeSet = tuple[IPRange, ...]


def parse_range(raw: Any, *, where: str) -> IPRange:
    """One range from its config object (`subnet`, `rangeStart`, `rangeEnd`, `gateway`)."""
    if not isinstance(raw, Mapping):
        raise _invalid(where, "must be an object with a subnet")
    subnet_text = raw.get("subnet")
    if subnet_text in (None, ""):
        raise _invalid(f"{where}.subnet", "missing subnet")
    subnet = _parse_subnet(subnet_text, where=f"{where}.subnet")
    gateway = _parse_address(raw.get("gateway"), where=f"{where}.gateway", family=subnet.version)
    start = _parse_address(raw.get("rangeStart"), where=f"{where}.rangeStart", family=subnet.version)
    end = _parse_address(raw.get("rangeEnd"), where=f"{where}.rangeEnd", family=subnet.version)
    first = subnet.network_address + 1
    last = subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address
    for key, value in (("rangeStart", start), ("rangeEnd", end)):
        if value is not None and value not in subnet:
            raise _invalid(f"{where}.{key}", f"{value} is not in subnet {subnet}")
    start = start if start is not None else first
    end = end if end is not None else last
    if int(start) > int(end):
        raise _invalid(f"{where}.rangeStart", f"{start} comes after rangeEnd {end}")
    return IPRange(subnet=subnet, start=start, end=end, gateway=gateway or first, where=where)


def parse_range_set(raw: Any, *, where: str) -> RangeSet:
    """A range set: a non-empty list of ranges of one family that do not overlap."""
    if not isinstance(raw, list) or not raw:
        raise _invalid(where, "must be a non-empty list of ranges")
    ranges = tuple(parse_range(item, where=f"{where}.{index}") for index, item in enumerate(raw))
    for later in ranges[1:]:
        if later.family != ranges[0].family:
            raise _invalid(later.where, f"mixed address families in one range set ({ranges[0].subnet}, {later.subnet})")
    for index, first in enumerate(ranges):
        for second in ranges[index + 1 :]:
            if first.overlaps(second):
                raise _invalid(second.where, f"range {second} overlaps range {first} ({first.where})")
    return ranges


def range_for(range_set: Sequence[IPRange], ip: IPAddress) -> IPRange | None:
    """The range of `range_set` that contains `ip`, or None."""
    return next((r for r in range_set if r.contains(ip)), None)


def describe(range_set: Sequence[IPRange]) -> str:
    """The reference's RangeSet.String: `10.0.0.2-10.0.0.254,10.1.0.2-10.1.0.254`."""
    return ",".join(str(r) for r in range_set)


def candidates(range_set: Sequence[IPRange], last_reserved: IPAddress | None) -> Iterator[tuple[IPRange, IPAddress]]:
    """Every allocatable address of the set once, round-robin: from the address after
    `last_reserved` (when the set contains it) through the end of its range, on through the
    following ranges, wrapping round, and ending with `last_reserved` itself; otherwise from
    the first range's start. Gateways, network and IPv4 broadcast addresses are skipped."""
    if not range_set:
        return
    index, offset = 0, 0
    holder = range_for(range_set, last_reserved) if last_reserved is not None else None
    if holder is not None and last_reserved is not None:
        index = range_set.index(holder)
        offset = int(last_reserved) - int(holder.start) + 1
    for step in range(len(range_set) + 1):
        current = range_set[(index + step) % len(range_set)]
        low = int(current.start) + (offset if step == 0 else 0)
        high = int(current.end)
        if step == len(range_set):  # back in the starting range: the part before the offset
            low, high = int(current.start), int(current.start) + offset - 1
        for value in range(low, high + 1):
            ip: IPAddress = ipaddress.IPv4Address(value) if current.family == 4 else ipaddress.IPv6Address(value)
            if not current.is_reserved(ip):
                yield current, ip


def _parse_subnet(value: Any, *, where: str) -> IPNetwork:
    if not isinstance(value, str):
        raise _invalid(where, "must be a CIDR string")
    try:
        subnet = ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise _invalid(where, f"invalid CIDR {value!r}") from exc
    if "/" not in value:
        raise _invalid(where, f"invalid CIDR {value!r}: missing prefix length")
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        raise _invalid(where, f"network {subnet} is too small to allocate from")
    if ipaddress.ip_interface(value).ip != subnet.network_address:
        raise _invalid(
            where,
            f"{value} has host bits set: for a /{subnet.prefixlen} the network address is {subnet.network_address}",
        )
    return subnet


def _parse_address(value: Any, *, where: str, family: int) -> IPAddress | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _invalid(where, "must be an IP address string")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError as exc:
        raise _invalid(where, f"invalid IP address {value!r}") from exc
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # Go's net.IP treats ::ffff:a.b.c.d as the IPv4 address
    if ip.version != family:
        raise _invalid(where, f"{ip} is not an IPv{family} address like its subnet")
    return ip


def _invalid(where: str, message: str) -> CniError:
    return CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: {message}")
