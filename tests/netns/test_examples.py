"""The bridge and macvlan examples (examples/), attached for real: the example YAML is
copied into a local-networks directory (netplex's source when no kubeconfig is set), with
the macvlan master swapped for a veth of a throwaway node namespace and host-local's
dataDir moved to a scratch directory; then the real `netplex` executable ADDs and DELs
the example pod, as a runtime would, and the kernel (`ip -j`) is asked what happened."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.netns.conftest import Uplink, ip_json, ns_name

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NETPLEX = shutil.which("netplex", path=str(Path(sys.executable).parent)) or "netplex"
CNI_VERSION = "1.0.0"
CLUSTER_NAD = {
    "apiVersion": "k8s.cni.cncf.io/v1",
    "kind": "NetworkAttachmentDefinition",
    "metadata": {"name": "cluster", "namespace": "kube-system"},
    "spec": {"config": ""},
}


def cluster_config(scratch: Path, bridge: str) -> dict[str, Any]:
    return {
        "cniVersion": CNI_VERSION,
        "name": "cluster",
        "type": "bridge",
        "bridge": bridge,
        "ipam": {"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": str(scratch / "ipam")},
    }


class Cluster:
    """A local-networks directory built from one example, and CNI calls against it."""

    def __init__(self, scratch: Path, node_ns: str, *, master: str = "") -> None:
        self.scratch = scratch
        self.node_ns = node_ns
        self.networks = scratch / "networks"
        self.networks.mkdir()
        self.cluster_bridge = f"npx{uuid.uuid4().hex[:8]}"
        cluster = dict(CLUSTER_NAD, spec={"config": json.dumps(cluster_config(scratch, self.cluster_bridge))})
        (self.networks / "cluster.yaml").write_text(yaml.safe_dump(cluster))
        self.master = master

    def add_example(self, directory: str) -> list[dict[str, Any]]:
        """Copy an example's manifests in, rewritten for this machine; returns its objects."""
        objects = []
        for path in sorted((EXAMPLES / directory).glob("*.yaml")):
            docs = [self._rewrite(doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
            (self.networks / f"{directory}-{path.name}").write_text(yaml.safe_dump_all(docs))
            objects.extend(docs)
        return objects

    def _rewrite(self, doc: dict[str, Any]) -> dict[str, Any]:
        if doc.get("kind") != "NetworkAttachmentDefinition":
            return doc
        config = json.loads(doc["spec"]["config"])
        for plugin in config.get("plugins", [config]):
            if "master" in plugin:
                plugin["master"] = self.master  # the example's eth1: a veth of the node namespace here
            if isinstance(plugin.get("ipam"), dict) and plugin["ipam"].get("type") == "host-local":
                plugin["ipam"]["dataDir"] = str(self.scratch / "ipam")  # never the host's /var/lib/cni
        return {**doc, "spec": {"config": json.dumps(config)}}

    def meta_conf(self) -> dict[str, Any]:
        return {
            "cniVersion": CNI_VERSION,
            "name": "netplex",
            "type": "netplex",
            "clusterNetwork": "cluster",
            "localNetworks": str(self.networks),
            "cniDir": str(self.scratch / "cni"),
        }

    def call(self, command: str, *, pod: str, container_id: str, netns: str) -> tuple[int, Any]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(Path(sys.executable).parent),
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};"
            f"K8S_POD_INFRA_CONTAINER_ID={container_id}",
        }
        answer = subprocess.run(
            ["ip", "netns", "exec", ns_name(self.node_ns), NETPLEX],
            input=json.dumps(self.meta_conf()), env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        return answer.returncode, json.loads(answer.stdout) if answer.stdout.strip() else answer.stderr

    def network_status(self, pod: str) -> list[dict[str, Any]]:
        text = (self.networks / "status" / f"default_{pod}.json").read_text()
        status: list[dict[str, Any]] = json.loads(json.loads(text)) if text.startswith('"') else json.loads(text)
        return status

    def reservations(self) -> list[str]:
        ipam = self.scratch / "ipam"
        return sorted(p.name for p in ipam.rglob("*") if p.is_file() and p.name[0].isdigit()) if ipam.exists() else []


def addresses(ns: str) -> dict[str, dict[str, Any]]:
    """ifname -> {mac, kind, master, ipv4: [interfaces]} in namespace `ns`, from the kernel."""
    links = {link["ifname"]: link for link in ip_json("-d", "link", "show", ns=ns)}
    found = {}
    for link in ip_json("addr", "show", ns=ns):
        if link["ifname"] == "lo":
            continue
        ipv4 = [
            ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            for info in link.get("addr_info", [])
            if info["family"] == "inet"
        ]
        found[link["ifname"]] = {
            "mac": link.get("address"),
            "kind": links[link["ifname"]].get("linkinfo", {}).get("info_kind"),
            "ipv4": ipv4,
        }
    return found


def pod_name(objects: list[dict[str, Any]]) -> str:
    [pod] = [doc for doc in objects if doc.get("kind") == "Pod"]
    name: str = pod["metadata"]["name"]
    return name


def test_bridge_example_attaches_net1_on_its_bridge(
    tmp_path: Path, host_ns: str, container_ns: str, make_ns: Callable[..., str]
) -> None:
    cluster = Cluster(tmp_path, host_ns)
    objects = cluster.add_example("bridge")
    pod = pod_name(objects)
    container_id = f"ex{uuid.uuid4().hex[:12]}"

    rc, result = cluster.call("ADD", pod=pod, container_id=container_id, netns=container_ns)
    assert rc == 0, result
    assert [iface["name"] for iface in result["interfaces"] if iface.get("sandbox")] == ["eth0", "net1"]

    kernel = addresses(container_ns)
    assert set(kernel) == {"eth0", "net1"}
    [net1] = kernel["net1"]["ipv4"]
    assert net1.network == ipaddress.ip_network("10.10.0.0/24")
    assert ipaddress.ip_address("10.10.0.10") <= net1.ip <= ipaddress.ip_address("10.10.0.200")  # rangeStart..End
    [eth0] = kernel["eth0"]["ipv4"]
    assert eth0.network == ipaddress.ip_network("10.99.0.0/24")
    node_links = {link["ifname"]: link for link in ip_json("link", "show", ns=host_ns)}
    assert "br-net1" in node_links  # the example's bridge, in the node namespace
    assert node_links["br-net1"]["mtu"] == 1500
    ports = [link for link in node_links.values() if link.get("master") == "br-net1"]
    assert len(ports) == 1  # the pod's veth peer

    status = cluster.network_status(pod)
    assert [(entry["name"], entry["interface"]) for entry in status] == [
        ("kube-system/cluster", "eth0"), ("default/bridge-net", "net1"),
    ]
    assert status[1]["ips"] == [str(net1.ip)]

    # A second pod on the same bridge reaches the first one over net1.
    other_ns = make_ns("npc-")
    other_id = f"ex{uuid.uuid4().hex[:12]}"
    rc, result = cluster.call("ADD", pod=pod, container_id=other_id, netns=other_ns)
    assert rc == 0, result
    ping = subprocess.run(
        ["ip", "netns", "exec", ns_name(other_ns), "ping", "-c", "1", "-W", "2", "-I", "net1", str(net1.ip)],
        capture_output=True, text=True, check=False,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr

    for cid, ns in ((container_id, container_ns), (other_id, other_ns)):
        rc, answer = cluster.call("DEL", pod=pod, container_id=cid, netns=ns)
        assert rc == 0, answer
    assert addresses(container_ns) == {}
    assert not [link for link in ip_json("link", "show", ns=host_ns) if link.get("master") == "br-net1"]
    assert cluster.reservations() == []


def test_macvlan_example_puts_the_pod_on_the_uplink_with_its_mac(
    tmp_path: Path, uplink: Uplink, container_ns: str
) -> None:
    cluster = Cluster(tmp_path, uplink.host_ns, master=uplink.name)
    objects = cluster.add_example("macvlan")
    pod = pod_name(objects)
    container_id = f"ex{uuid.uuid4().hex[:12]}"

    rc, result = cluster.call("ADD", pod=pod, container_id=container_id, netns=container_ns)
    assert rc == 0, result

    kernel = addresses(container_ns)
    assert kernel["net1"]["kind"] == "macvlan"
    assert kernel["net1"]["mac"] == "02:00:00:50:00:01"  # the annotation's mac, through the capability
    [net1] = kernel["net1"]["ipv4"]
    assert net1.network == ipaddress.ip_network("192.168.50.0/24")
    assert ipaddress.ip_address("192.168.50.100") <= net1.ip <= ipaddress.ip_address("192.168.50.149")
    [macvlan] = [link for link in ip_json("-d", "link", "show", "net1", ns=container_ns)]
    assert macvlan["linkinfo"]["info_data"]["mode"] == "bridge"

    # The wire sees the pod: from the uplink's far end, ARP for the pod's address.
    wire = subprocess.run(
        ["ip", "netns", "exec", ns_name(uplink.wire_ns), "ip", "addr", "add", "192.168.50.2/24", "dev",
         uplink.wire_name],
        capture_output=True, text=True, check=False,
    )
    assert wire.returncode == 0, wire.stderr
    ping = subprocess.run(
        ["ip", "netns", "exec", ns_name(uplink.wire_ns), "ping", "-c", "1", "-W", "2", str(net1.ip)],
        capture_output=True, text=True, check=False,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    neighbours = ip_json("neigh", "show", "dev", uplink.wire_name, ns=uplink.wire_ns)
    assert any(entry.get("lladdr") == "02:00:00:50:00:01" for entry in neighbours), neighbours

    status = cluster.network_status(pod)
    assert status[1]["name"] == "default/macvlan-net"
    assert status[1]["mac"] == "02:00:00:50:00:01"

    rc, answer = cluster.call("DEL", pod=pod, container_id=container_id, netns=container_ns)
    assert rc == 0, answer
    assert addresses(container_ns) == {}
    assert cluster.reservations() == []


@pytest.mark.parametrize("directory", ["bridge", "macvlan"])
def test_the_attached_examples_are_the_shipped_ones(directory: str) -> None:
    """Guard: the examples this lane attaches exist and hold a NAD and a pod."""
    paths = sorted((EXAMPLES / directory).glob("*.yaml"))
    kinds = [doc["kind"] for path in paths for doc in yaml.safe_load_all(path.read_text())]
    assert sorted(kinds) == ["NetworkAttachmentDefinition", "Pod"]
