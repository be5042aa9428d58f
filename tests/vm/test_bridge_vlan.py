"""The bridge delegate's VLAN keys (`vlan`, `vlanTrunk`, `preserveDefaultVlan`, and the
`<bridge>.<vlan>` gateway of `isGateway`) under a kernel with bridge VLAN filtering.

Runs only in the vm lane. Like tests/netns, every call executes `netplex-bridge` inside a
throwaway namespace that plays the node, and outcomes are read from the kernel's bridge
VLAN table (`bridge -j vlan show`) and `ip -j`, not from the plugin's answer.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BIN = str(Path(sys.executable).with_name("netplex-bridge"))
BRIDGE = "npbr0"


def _ns_add(prefix: str) -> str:
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name


@pytest.fixture
def make_ns() -> Iterator[Callable[[], str]]:
    """Throwaway namespaces by name, deleted after the test (with every link in them)."""
    made: list[str] = []

    def make() -> str:
        made.append(_ns_add("vmb-"))
        return made[-1]

    try:
        yield make
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "delete", name], check=False)


@dataclasses.dataclass(frozen=True)
class Node:
    ns: str
    data_dir: Path

    def conf(self, *, subnet: str | None = None, **keys: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {"cniVersion": "1.0.0", "name": "vnet", "type": "bridge", "bridge": BRIDGE, "ipam": {}}
        if subnet is not None:
            doc["ipam"] = {"type": "host-local", "subnet": subnet, "dataDir": str(self.data_dir)}
        return doc | keys

    def add(self, conf: dict[str, Any], *, pod: str, container_id: str) -> dict[str, Any]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": f"/run/netns/{pod}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/nonexistent",
        }
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns, BIN],
            input=json.dumps(conf),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, f"ADD failed: {proc.stdout} {proc.stderr[-2000:]}"
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    def json(self, *argv: str) -> Any:
        out = subprocess.run(["ip", "netns", "exec", self.ns, *argv], check=True, capture_output=True, text=True)
        return json.loads(out.stdout) if out.stdout.strip() else []

    def vlans(self, port: str) -> dict[int, set[str]]:
        """vid -> flags ("PVID", "Egress Untagged") of a bridge port, from the kernel."""
        found: dict[int, set[str]] = {}
        for entry in self.json("bridge", "-j", "vlan", "show", "dev", port):
            for vlan in entry.get("vlans", []):
                first, last = vlan["vlan"], vlan.get("vlanEnd", vlan["vlan"])
                for vid in range(first, last + 1):
                    found[vid] = set(vlan.get("flags", []))
        return found

    def vlan_filtering(self) -> bool:
        [link] = self.json("ip", "-j", "-d", "link", "show", "dev", BRIDGE)
        return bool(link["linkinfo"]["info_data"]["vlan_filtering"])


@pytest.fixture
def node(make_ns: Callable[[], str], tmp_path: Path) -> Node:
    return Node(ns=make_ns(), data_dir=tmp_path / "ipam")


ACCESS = {"PVID", "Egress Untagged"}


def test_vlan_makes_an_access_port_and_keeps_the_default_vlan(node: Node, make_ns: Callable[[], str]) -> None:
    result = node.add(node.conf(vlan=100), pod=make_ns(), container_id="access")

    assert node.vlan_filtering()
    vlans = node.vlans(result["interfaces"][1]["name"])
    assert vlans[100] == ACCESS
    assert 1 in vlans and "PVID" not in vlans[1]


def test_preserve_default_vlan_false_leaves_only_the_access_vlan(node: Node, make_ns: Callable[[], str]) -> None:
    result = node.add(node.conf(vlan=100, preserveDefaultVlan=False), pod=make_ns(), container_id="only")

    assert node.vlans(result["interfaces"][1]["name"]) == {100: ACCESS}


def test_vlan_trunk_allows_tagged_ids_and_ranges(node: Node, make_ns: Callable[[], str]) -> None:
    conf = node.conf(vlanTrunk=[{"id": 101}, {"minID": 200, "maxID": 202}], preserveDefaultVlan=False)

    result = node.add(conf, pod=make_ns(), container_id="trunk")

    assert node.vlan_filtering()
    assert node.vlans(result["interfaces"][1]["name"]) == {101: set(), 200: set(), 201: set(), 202: set()}


def test_a_trunk_with_vlan_carries_it_untagged_as_native(node: Node, make_ns: Callable[[], str]) -> None:
    conf = node.conf(vlan=7, vlanTrunk=[{"id": 8}], preserveDefaultVlan=False)

    result = node.add(conf, pod=make_ns(), container_id="native")

    assert node.vlans(result["interfaces"][1]["name"]) == {7: ACCESS, 8: set()}


def test_pods_reach_each_other_and_the_vlan_gateway_only_within_their_vlan(
    node: Node, make_ns: Callable[[], str]
) -> None:
    pod_a, pod_b, pod_c = make_ns(), make_ns(), make_ns()
    on_100 = node.conf(subnet="10.88.0.0/24", vlan=100, isGateway=True, preserveDefaultVlan=False)
    on_200 = node.conf(subnet="10.88.0.0/24", vlan=200, preserveDefaultVlan=False)

    result_a = node.add(on_100, pod=pod_a, container_id="a")
    result_b = node.add(on_100, pod=pod_b, container_id="b")
    result_c = node.add(on_200, pod=pod_c, container_id="c")

    assert [i["name"] for i in result_a["interfaces"]][3] == f"{BRIDGE}.100"
    gateway_addrs = [
        a["local"] for link in node.json("ip", "-j", "addr", "show", "dev", f"{BRIDGE}.100") for a in link["addr_info"]
    ]
    assert "10.88.0.1" in gateway_addrs

    def ping(pod: str, target: dict[str, Any]) -> int:
        address = target["ips"][0]["address"].split("/")[0]
        return subprocess.run(
            ["ip", "netns", "exec", pod, "ping", "-c1", "-W1", address], capture_output=True, check=False
        ).returncode

    assert ping(pod_a, result_b) == 0
    assert ping(pod_a, result_c) != 0
    gateway = subprocess.run(["ip", "netns", "exec", pod_a, "ping", "-c1", "-W1", "10.88.0.1"], check=False)
    assert gateway.returncode == 0
