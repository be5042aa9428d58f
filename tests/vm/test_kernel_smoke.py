"""The guest kernel has what this host lacks: ipvlan, macvlan, dummy, 802.1q, bridge VLAN filtering.

A fast smoke test of the vm lane itself: each test builds links in a namespace of its own
with iproute2 (C binaries, quick under emulation) and reads the kernel's state back as
JSON. Module auto-loading (rtnl-link-*) goes through the host's modprobe in the guest.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def netns() -> Iterator[str]:
    """A throwaway namespace; deleting it destroys every virtual link made in it."""
    name = f"vm-{uuid.uuid4().hex[:10]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def ip(netns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "-n", netns, *args], capture_output=True, text=True, check=False)


def ok(netns: str, *args: str) -> None:
    proc = ip(netns, *args)
    assert proc.returncode == 0, f"ip {' '.join(args)}: {proc.stderr.strip()}"


def link(netns: str, name: str) -> dict[str, Any]:
    proc = ip(netns, "-j", "-d", "link", "show", "dev", name)
    assert proc.returncode == 0, proc.stderr
    found: list[dict[str, Any]] = json.loads(proc.stdout)
    return found[0]


def kind(netns: str, name: str) -> str:
    return str(link(netns, name)["linkinfo"]["info_kind"])


def test_the_guest_is_a_real_kernel_run_as_root() -> None:
    assert os.environ["NETPLEX_IN_VM"] == "1"
    assert os.geteuid() == 0
    assert os.uname().nodename == "netplex-vm"


def test_ipvlan_and_macvlan_sit_on_dummy_parents(netns: str) -> None:
    ok(netns, "link", "add", "d0", "type", "dummy")
    ok(netns, "link", "add", "iv0", "link", "d0", "type", "ipvlan", "mode", "l2")
    ok(netns, "link", "add", "d1", "type", "dummy")
    ok(netns, "link", "add", "mv0", "link", "d1", "type", "macvlan", "mode", "bridge")

    assert [kind(netns, name) for name in ("d0", "iv0", "d1", "mv0")] == ["dummy", "ipvlan", "dummy", "macvlan"]
    assert link(netns, "iv0")["linkinfo"]["info_data"]["mode"] == "l2"
    assert link(netns, "mv0")["linkinfo"]["info_data"]["mode"] == "bridge"


@pytest.mark.parametrize(("first", "second"), [("ipvlan", "macvlan"), ("macvlan", "ipvlan")])
def test_ipvlan_and_macvlan_cannot_share_a_parent(netns: str, first: str, second: str) -> None:
    ok(netns, "link", "add", "d0", "type", "dummy")
    ok(netns, "link", "add", "a0", "link", "d0", "type", first)

    refused = ip(netns, "link", "add", "b0", "link", "d0", "type", second)

    assert refused.returncode != 0
    assert os.strerror(errno.EBUSY) in refused.stderr  # iproute2 prints strerror(-error)
    assert ip(netns, "link", "show", "dev", "b0").returncode != 0


def test_8021q_vlan_link_carries_its_id(netns: str) -> None:
    ok(netns, "link", "add", "d0", "type", "dummy")
    ok(netns, "link", "add", "link", "d0", "name", "d0.100", "type", "vlan", "id", "100")

    vlan = link(netns, "d0.100")
    assert vlan["linkinfo"]["info_kind"] == "vlan"
    assert vlan["linkinfo"]["info_data"]["protocol"] == "802.1Q"
    assert vlan["linkinfo"]["info_data"]["id"] == 100


def test_bridge_vlan_filtering_keeps_port_vlans(netns: str) -> None:
    ok(netns, "link", "add", "br0", "type", "bridge", "vlan_filtering", "1")
    ok(netns, "link", "add", "d0", "type", "dummy")
    ok(netns, "link", "set", "d0", "master", "br0")
    proc = subprocess.run(
        ["bridge", "-n", netns, "vlan", "add", "dev", "d0", "vid", "10"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr

    assert link(netns, "br0")["linkinfo"]["info_data"]["vlan_filtering"] == 1
    shown = subprocess.run(
        ["bridge", "-n", netns, "-j", "vlan", "show", "dev", "d0"], capture_output=True, text=True, check=True
    )
    ports = json.loads(shown.stdout)
    vids = {vlan["vlan"] for port in ports if port["ifname"] == "d0" for vlan in port["vlans"]}
    assert vids == {1, 10}  # 1: the default PVID every new port gets
