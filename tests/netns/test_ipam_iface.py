"""`delegates.ipam.iface` against the real kernel: an IPAM result put on a veth end in a
throwaway namespace, read back with `ip -j` (the kernel's view), and CHECK noticing what
was taken away."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from cni.errors import CniError
from cni.result import Result
from delegates.ipam import iface
from tests.netns.conftest import ip_json, ns_name


def make_result(*ips: dict[str, Any], routes: list[dict[str, Any]] | None = None) -> Result:
    return Result.from_wire(
        {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}], "ips": list(ips), "routes": routes or []}
    )


@pytest.fixture
def pod(container_ns: str) -> str:
    """`container_ns` with a veth pair in it: `eth0` (down, to be configured) and `peer0` (up)."""
    name = ns_name(container_ns)
    subprocess.run(["ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "peer0", "up"], check=True)
    return container_ns


def addr_info(ns: str, ifname: str = "eth0") -> list[dict[str, Any]]:
    links = ip_json("addr", "show", "dev", ifname, ns=ns)
    return [info for info in links[0]["addr_info"] if info.get("scope") == "global"]


def route_rows(ns: str, family: str) -> set[tuple[str, str | None, str | None]]:
    return {(r["dst"], r.get("gateway"), r.get("dev")) for r in ip_json(family, "route", "show", ns=ns)}


def sysctl(ns: str, key: str) -> str:
    out = subprocess.run(
        ["ip", "netns", "exec", ns_name(ns), "sysctl", "-n", key], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


DUAL = make_result(
    {"address": "10.70.0.5/24", "gateway": "10.70.0.1", "interface": 0},
    {"address": "fd70::5/64", "gateway": "fd70::1", "interface": 0},
    routes=[{"dst": "0.0.0.0/0"}, {"dst": "::/0"}, {"dst": "10.80.0.0/16", "gw": "10.70.0.254"}],
)


def test_configure_brings_the_link_up_with_addresses_and_routes(pod: str) -> None:
    iface.configure(pod, "eth0", DUAL, iface_index=0, nodad=True)
    link = ip_json("link", "show", "dev", "eth0", ns=pod)[0]
    assert "UP" in link["flags"]
    assert {(a["local"], a["prefixlen"]) for a in addr_info(pod)} == {("10.70.0.5", 24), ("fd70::5", 64)}
    assert {("default", "10.70.0.1", "eth0"), ("10.80.0.0/16", "10.70.0.254", "eth0")} <= route_rows(pod, "-4")
    assert ("default", "fd70::1", "eth0") in route_rows(pod, "-6")


def test_nodad_leaves_no_address_tentative(pod: str) -> None:
    iface.configure(pod, "eth0", DUAL, iface_index=0, nodad=True)
    v6 = [a for a in addr_info(pod) if a["family"] == "inet6"]
    assert v6 and not any(a.get("tentative") for a in v6)
    assert sysctl(pod, "net.ipv6.conf.eth0.accept_dad") == "0"


def test_with_dad_configure_waits_until_the_address_settles(pod: str) -> None:
    iface.configure(pod, "eth0", DUAL, iface_index=0, nodad=False)
    v6 = [a for a in addr_info(pod) if a["family"] == "inet6"]
    assert v6 and not any(a.get("tentative") for a in v6)
    assert sysctl(pod, "net.ipv6.conf.eth0.accept_dad") != "0"


def test_ipv6_is_enabled_on_the_link_and_lo_when_needed(pod: str) -> None:
    name = ns_name(pod)
    for link in ("eth0", "lo"):
        subprocess.run(
            ["ip", "netns", "exec", name, "sysctl", "-qw", f"net.ipv6.conf.{link}.disable_ipv6=1"], check=True
        )
    iface.configure(pod, "eth0", DUAL, iface_index=0, nodad=True)
    assert sysctl(pod, "net.ipv6.conf.eth0.disable_ipv6") == "0"
    assert sysctl(pod, "net.ipv6.conf.lo.disable_ipv6") == "0"
    assert "fd70::5" in {a["local"] for a in addr_info(pod)}


def test_only_addresses_for_this_interface_are_added(pod: str) -> None:
    result = make_result(
        {"address": "10.71.0.5/24", "interface": 0},
        {"address": "10.72.0.5/24", "interface": 1},
        {"address": "10.73.0.5/24"},
    )
    iface.configure(pod, "eth0", result, iface_index=0, nodad=True)
    assert [a["local"] for a in addr_info(pod)] == ["10.71.0.5"]


def test_check_passes_then_notices_a_removed_address(pod: str) -> None:
    iface.configure(pod, "eth0", DUAL, iface_index=0, nodad=True)
    iface.check(pod, "eth0", DUAL, 0)
    subprocess.run(["ip", "-n", ns_name(pod), "addr", "del", "fd70::5/64", "dev", "eth0"], check=True)
    with pytest.raises(CniError) as info:
        iface.check(pod, "eth0", DUAL, 0)
    assert info.value.msg == 'check: address fd70::5/64 is missing on "eth0"'


def test_check_notices_a_removed_route(pod: str) -> None:
    iface.configure(pod, "eth0", DUAL, iface_index=0, nodad=True)
    subprocess.run(["ip", "-n", ns_name(pod), "route", "del", "10.80.0.0/16"], check=True)
    with pytest.raises(CniError) as info:
        iface.check(pod, "eth0", DUAL, 0)
    assert info.value.msg == 'check: route 10.80.0.0/16 via 10.70.0.254 is missing on "eth0"'


@pytest.mark.parametrize(
    "verb", [iface.check, lambda ns, name, res, idx: iface.configure(ns, name, res, iface_index=idx, nodad=True)]
)
def test_a_missing_interface_is_error_3(pod: str, verb: Callable[..., None]) -> None:
    with pytest.raises(CniError) as info:
        verb(pod, "nope0", DUAL, 0)
    assert info.value.code == 3
    assert '"nope0"' in info.value.msg


def test_a_missing_namespace_is_error_3() -> None:
    with pytest.raises(CniError) as info:
        iface.configure("/run/netns/npc-does-not-exist", "eth0", DUAL, iface_index=0, nodad=True)
    assert info.value.code == 3
