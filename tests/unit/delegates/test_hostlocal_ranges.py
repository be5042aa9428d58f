"""host-local ranges: defaults, validation naming the key, and the round-robin order."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cni.errors import CniError
from delegates.ipam import hostlocal_ranges as ranges

ip = ipaddress.ip_address


def parse(raw: dict[str, Any]) -> ranges.IPRange:
    return ranges.parse_range(raw, where="ipam.ranges.0.0")


def order(range_set: ranges.RangeSet, last: str | None = None) -> list[str]:
    return [str(address) for _, address in ranges.candidates(range_set, ip(last) if last else None)]


def test_ipv4_defaults_follow_the_reference() -> None:
    r = parse({"subnet": "10.1.2.0/24"})
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.1.2.1", "10.1.2.254", "10.1.2.1")


def test_ipv6_defaults_end_at_the_last_address() -> None:
    r = parse({"subnet": "fd00::/120"})
    assert (str(r.start), str(r.end), str(r.gateway)) == ("fd00::1", "fd00::ff", "fd00::1")


def test_explicit_bounds_and_gateway_are_kept() -> None:
    r = parse({"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.100", "rangeEnd": "10.1.2.110", "gateway": "10.1.2.254"})
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.1.2.100", "10.1.2.110", "10.1.2.254")
    assert r.contains(ip("10.1.2.105")) and not r.contains(ip("10.1.2.99")) and not r.contains(ip("fd00::1"))


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        ({"subnet": "10.0.0.0/33"}, "ipam.ranges.0.0.subnet", "invalid CIDR"),
        ({"subnet": "nonsense"}, "ipam.ranges.0.0.subnet", "invalid CIDR"),
        ({"subnet": "10.0.0.0"}, "ipam.ranges.0.0.subnet", "missing prefix length"),
        ({"subnet": 10}, "ipam.ranges.0.0.subnet", "must be a CIDR string"),
        ({"subnet": "10.0.0.5/24"}, "ipam.ranges.0.0.subnet", "network address is 10.0.0.0"),
        ({"subnet": "10.0.0.0/31"}, "ipam.ranges.0.0.subnet", "too small"),
        ({"subnet": "fd00::/127"}, "ipam.ranges.0.0.subnet", "too small"),
        ({}, "ipam.ranges.0.0.subnet", "missing subnet"),
        ({"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}, "ipam.ranges.0.0.rangeStart", "not in subnet"),
        ({"subnet": "10.0.0.0/24", "rangeEnd": "10.0.1.1"}, "ipam.ranges.0.0.rangeEnd", "not in subnet"),
        (
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.5"},
            "ipam.ranges.0.0.rangeStart",
            "comes after rangeEnd",
        ),
        ({"subnet": "10.0.0.0/24", "gateway": "fd00::1"}, "ipam.ranges.0.0.gateway", "not an IPv4 address"),
        ({"subnet": "10.0.0.0/24", "gateway": "10.0.0.300"}, "ipam.ranges.0.0.gateway", "invalid IP address"),
    ],
)
def test_bad_range_is_error_7_naming_the_key(raw: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(CniError) as info:
        parse(raw)
    assert info.value.code == 7
    assert info.value.msg.startswith(f"{key}: ")
    assert fragment in info.value.msg


def test_overlapping_ranges_in_one_set_are_refused() -> None:
    with pytest.raises(CniError) as info:
        ranges.parse_range_set(
            [{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.200"}],
            where="ipam.ranges.0",
        )
    assert info.value.code == 7
    assert info.value.msg.startswith("ipam.ranges.0.1: ")
    assert "overlaps" in info.value.msg


def test_mixed_families_in_one_set_are_refused() -> None:
    with pytest.raises(CniError, match=r"^ipam\.ranges\.0\.1: mixed address families"):
        ranges.parse_range_set([{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}], where="ipam.ranges.0")


def test_empty_set_is_refused() -> None:
    with pytest.raises(CniError, match=r"^ipam\.ranges\.0: must be a non-empty list"):
        ranges.parse_range_set([], where="ipam.ranges.0")


def test_first_order_starts_at_range_start_and_skips_the_gateway() -> None:
    rs = ranges.parse_range_set([{"subnet": "10.0.0.0/29"}], where="r")
    assert order(rs) == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]


def test_order_resumes_after_the_last_reserved_and_wraps_round() -> None:
    rs = ranges.parse_range_set([{"subnet": "10.0.0.0/29"}], where="r")
    assert order(rs, "10.0.0.4") == ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]


def test_order_walks_every_range_of_the_set() -> None:
    rs = ranges.parse_range_set(
        [
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.12"},
            {"subnet": "10.0.1.0/24", "rangeStart": "10.0.1.10", "rangeEnd": "10.0.1.11"},
        ],
        where="r",
    )
    assert order(rs, "10.0.0.12") == ["10.0.1.10", "10.0.1.11", "10.0.0.10", "10.0.0.11", "10.0.0.12"]
    assert order(rs, "10.0.1.10") == ["10.0.1.11", "10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.1.10"]


def test_last_reserved_outside_the_set_starts_from_the_beginning() -> None:
    rs = ranges.parse_range_set([{"subnet": "10.0.0.0/29"}], where="r")
    assert order(rs, "192.168.0.1")[0] == "10.0.0.2"


def test_network_and_broadcast_are_never_candidates() -> None:
    rs = ranges.parse_range_set(
        [{"subnet": "10.0.0.0/30", "rangeStart": "10.0.0.0", "rangeEnd": "10.0.0.3", "gateway": "10.0.0.2"}],
        where="r",
    )
    assert order(rs) == ["10.0.0.1"]


def test_ipv6_candidates_stay_ipv6_for_small_values() -> None:
    rs = ranges.parse_range_set([{"subnet": "::/120", "rangeStart": "::2", "rangeEnd": "::3"}], where="r")
    assert [type(a) for _, a in ranges.candidates(rs, None)] == [ipaddress.IPv6Address] * 2


def test_describe_reads_like_the_reference() -> None:
    rs = ranges.parse_range_set([{"subnet": "10.0.0.0/30"}, {"subnet": "10.0.1.0/30"}], where="r")
    assert ranges.describe(rs) == "10.0.0.1-10.0.0.2,10.0.1.1-10.0.1.2"
