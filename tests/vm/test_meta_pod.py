"""A meta-plugin pod with all three shipped delegates (bridge, macvlan, ipvlan) under a
kernel that has ipvlan: ADD, CHECK and DEL through netplex, verified with the kernel.

netplex runs in-process (`meta.plugin` through the skeleton, as the executable does)
from a thread inside a throwaway node namespace; Python is ~20x slower under emulation,
so one pod and one pass. The networks come from a local manifest directory."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni import skel
from delegates.netlink import netns
from meta import plugin
from tests.netns.conftest import ip_json, ns_name

NADS = """
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: cluster, namespace: kube-system}}
spec:
  config: '{{"cniVersion": "1.0.0", "type": "bridge", "bridge": "vmbr0", "isGateway": true,
            "ipam": {{"type": "host-local", "subnet": "10.70.0.0/24", "dataDir": "{data}"}}}}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: mv, namespace: default}}
spec:
  config: '{{"cniVersion": "1.0.0", "type": "macvlan", "master": "d0",
            "ipam": {{"type": "host-local", "subnet": "10.71.0.0/24", "dataDir": "{data}"}}}}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: iv, namespace: default}}
spec:
  config: '{{"cniVersion": "1.0.0", "type": "ipvlan", "master": "d1", "mode": "l2",
            "ipam": {{"type": "host-local", "subnet": "10.72.0.0/24", "dataDir": "{data}"}}}}'
---
apiVersion: v1
kind: Pod
metadata:
  name: trio
  namespace: default
  annotations: {{k8s.v1.cni.cncf.io/networks: "mv,iv"}}
"""


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(node namespace, pod namespace); the node has dummy masters d0 and d1."""
    node_path = netns.create(netns.unique_name("vmn-"))
    pod_path = netns.create(netns.unique_name("vmp-"))
    try:
        for args in (["link", "set", "lo", "up"], ["link", "add", "d0", "type", "dummy"],
                     ["link", "add", "d1", "type", "dummy"], ["link", "set", "d0", "up"],
                     ["link", "set", "d1", "up"]):
            subprocess.run(["ip", "-n", ns_name(node_path), *args], check=True, capture_output=True)
        yield node_path, pod_path
    finally:
        netns.remove(ns_name(pod_path))
        netns.remove(ns_name(node_path))


def run_netplex(command: str, conf: dict[str, Any], *, node_path: str, pod_path: str) -> tuple[int, Any]:
    environ = {
        "CNI_COMMAND": command, "CNI_CONTAINERID": "trio1", "CNI_NETNS": pod_path, "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent", "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=trio",
    }
    out = io.StringIO()

    def call() -> int:
        return skel.run(plugin.PLUGIN, environ=environ, stdin=io.BytesIO(json.dumps(conf).encode()), stdout=out)

    rc = netns.call(node_path, call)
    text = out.getvalue()
    return rc, json.loads(text) if text.strip() else None


def test_pod_with_bridge_macvlan_and_ipvlan(node: tuple[str, str], tmp_path: Path) -> None:
    node_path, pod_path = node
    manifests = tmp_path / "networks"
    manifests.mkdir()
    (manifests / "all.yaml").write_text(NADS.format(data=tmp_path / "ipam"))
    conf = {
        "cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "cluster",
        "localNetworks": str(manifests), "cniDir": str(tmp_path / "cni"),
    }

    rc, result = run_netplex("ADD", conf, node_path=node_path, pod_path=pod_path)
    assert rc == 0, result
    links = {link["ifname"]: link for link in ip_json("-d", "link", ns=pod_path)}
    assert links["eth0"]["linkinfo"]["info_kind"] == "veth"
    assert links["net1"]["linkinfo"]["info_kind"] == "macvlan"
    assert links["net2"]["linkinfo"]["info_kind"] == "ipvlan"
    addresses = {a["ifname"]: [i["local"] for i in a["addr_info"] if i["family"] == "inet"]
                 for a in ip_json("addr", ns=pod_path)}
    assert addresses["eth0"] == ["10.70.0.2"]
    assert addresses["net1"] == ["10.71.0.2"]
    assert addresses["net2"] == ["10.72.0.2"]
    assert [ip["address"] for ip in result["ips"]] == ["10.70.0.2/24"]

    assert run_netplex("CHECK", conf | {"prevResult": result}, node_path=node_path, pod_path=pod_path)[0] == 0

    for _ in range(2):
        rc, answer = run_netplex("DEL", conf, node_path=node_path, pod_path=pod_path)
        assert rc == 0, answer
    assert [link["ifname"] for link in ip_json("link", ns=pod_path)] == ["lo"]
    leftover_ips = [p.name for p in (tmp_path / "ipam").rglob("*") if p.is_file() and p.name[0].isdigit()]
    assert leftover_ips == []
    assert list((tmp_path / "cni" / "cache").glob("*.json")) == []
