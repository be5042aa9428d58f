"""Whole pods through the real `netplex` executable (in every mode, tests/kube/runners.py):
two pods, each with four attachments (the cluster bridge, a second bridge, and two
macvlans on a stand-in uplink), checked in the kernel and by pinging from one pod to the
other over every network; then DEL, and nothing is left.

The networks and pods come from a local manifest directory (no kubeconfig), the source
netplex uses on machines without Kubernetes."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.kube import runners
from tests.kube.runners import runner_fixture  # noqa: F401 - the shared `runner` fixture
from tests.netns.conftest import Uplink, ip_json, ns_name

NETWORKS = "k8s.v1.cni.cncf.io/networks"
SUBNETS = {"cluster": "10.71.0.0/24", "blue": "10.72.0.0/24", "red": "10.73.0.0/24", "pink": "10.74.0.0/24"}


def nad(namespace: str, name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": json.dumps({"cniVersion": "1.0.0", "name": name} | config)},
    }


def pod(name: str, annotation: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default",
                                                            "annotations": {NETWORKS: annotation}}}


@pytest.fixture
def cluster(tmp_path: Path, uplink: Uplink) -> dict[str, Any]:
    """The manifests directory and the meta config that reads it."""
    data = str(tmp_path / "ipam")
    manifests = tmp_path / "networks"
    manifests.mkdir()
    objects = [
        nad("kube-system", "cluster", {"type": "bridge", "bridge": "npcl0", "isGateway": True, "ipam": {
            "type": "host-local", "subnet": SUBNETS["cluster"], "dataDir": data, "routes": [{"dst": "0.0.0.0/0"}]}}),
        nad("default", "blue", {"type": "bridge", "bridge": "npbl0",
                                "ipam": {"type": "host-local", "subnet": SUBNETS["blue"], "dataDir": data}}),
        nad("default", "red", {"type": "macvlan", "master": uplink.name, "mode": "bridge",
                               "ipam": {"type": "host-local", "subnet": SUBNETS["red"], "dataDir": data}}),
        nad("default", "pink", {"type": "macvlan", "master": uplink.name, "mode": "bridge",
                                "ipam": {"type": "host-local", "subnet": SUBNETS["pink"], "dataDir": data}}),
        pod("pod-a", "blue, red, pink@pink0"),
        pod("pod-b", json.dumps([{"name": "blue"}, {"name": "red", "interface": "red0"}, {"name": "pink"}])),
    ]
    (manifests / "objects.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    return {
        "cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "cluster",
        "localNetworks": str(manifests), "cniDir": str(tmp_path / "cni"), "binDir": str(tmp_path / "bin"),
    }


def addresses(netns: str) -> dict[str, tuple[str, str]]:
    """ifname -> (kind, the one global IPv4 CIDR), from the kernel."""
    found = {}
    for link in ip_json("-d", "addr", "show", ns=netns):
        v4 = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a["family"] == "inet"
              and a.get("scope") == "global"]
        if link["ifname"] != "lo":
            assert len(v4) == 1, link
            found[link["ifname"]] = (link.get("linkinfo", {}).get("info_kind", ""), v4[0])
    return found


def in_subnet(cidr: str, network: str) -> bool:
    return ipaddress.ip_interface(cidr).ip in ipaddress.ip_network(SUBNETS[network])


def test_two_pods_with_four_networks_talk_over_each_and_leave_nothing(
    runner: runners.Runner, cluster: dict[str, Any], make_ns: Callable[..., str], host_ns: str, tmp_path: Path
) -> None:
    pods = {name: make_ns("npp-", lo_up=True) for name in ("pod-a", "pod-b")}
    ids = {name: f"c{uuid.uuid4().hex}" for name in pods}

    def call(command: str, name: str) -> runners.Answer:
        return runner.call(command, cluster, container_id=ids[name], netns=pods[name], ifname="eth0",
                           cni_args=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};"
                                    f"K8S_POD_INFRA_CONTAINER_ID={ids[name]}")

    for name in pods:
        answer = call("ADD", name)
        assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    seen = {name: addresses(netns) for name, netns in pods.items()}
    assert {k: v[0] for k, v in seen["pod-a"].items()} == {"eth0": "veth", "net1": "veth", "net2": "macvlan",
                                                            "pink0": "macvlan"}
    assert {k: v[0] for k, v in seen["pod-b"].items()} == {"eth0": "veth", "net1": "veth", "red0": "macvlan",
                                                            "net3": "macvlan"}
    networks = {"pod-a": {"eth0": "cluster", "net1": "blue", "net2": "red", "pink0": "pink"},
                "pod-b": {"eth0": "cluster", "net1": "blue", "red0": "red", "net3": "pink"}}
    for name, by_ifname in networks.items():
        for ifname, network in by_ifname.items():
            assert in_subnet(seen[name][ifname][1], network), (name, ifname, seen[name])
        routes = ip_json("-4", "route", "show", "default", ns=pods[name])
        assert [route["dev"] for route in routes] == ["eth0"]
    bridges = {link["ifname"]: link for link in ip_json("-d", "link", "show", ns=host_ns)}
    for bridge in ("npcl0", "npbl0"):
        ports = [link for link in bridges.values() if link.get("master") == bridge]
        assert len(ports) == 2, (bridge, sorted(bridges))
    # pod-a reaches pod-b over each of the four networks, from the interface on that network.
    by_network_b = {network: ifname for ifname, network in networks["pod-b"].items()}
    for ifname, network in networks["pod-a"].items():
        target = seen["pod-b"][by_network_b[network]][1].split("/")[0]
        ping = subprocess.run(
            ["ip", "netns", "exec", ns_name(pods["pod-a"]), "ping", "-c", "1", "-W", "3", "-I", ifname, target],
            capture_output=True, text=True, check=False,
        )
        assert ping.returncode == 0, (network, ifname, target, ping.stdout, ping.stderr)
    for name in pods:
        answer = call("DEL", name)
        assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    for netns in pods.values():
        assert [link["ifname"] for link in ip_json("link", "show", ns=netns)] == ["lo"]
    node = ip_json("-d", "link", "show", ns=host_ns)
    kinds = {link["ifname"]: link.get("linkinfo", {}).get("info_kind") for link in node}
    left = [name for name, kind in kinds.items() if kind not in ("bridge", None) and not name.startswith("upl-")]
    assert left == []  # bridges stay, as the reference bridge plugin leaves them
    reserved = [p.name for p in (tmp_path / "ipam").rglob("*") if p.is_file() and p.name[0].isdigit()]
    assert reserved == []
    assert list((tmp_path / "cni" / "cache").glob("*.json")) == []
