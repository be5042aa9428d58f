"""NFV on real PCI NICs: the vm lane's guest has three virtio-net PCI functions (tools/vm
gives it them, on a QEMU-internal hub that reaches nothing outside), eth0..eth2 at
0000:00:10.0.. in the guest's own namespace, which plays the node here.

- host-device by `pciBusID` and by `device`: the NIC moves into the pod and carries
  traffic to another pod's NIC over the hub; DEL gives it back; when the pod's namespace
  is deleted first, the kernel returns the NIC and DEL finds it.
- the resourceName flow through netplex, in thin mode (`meta.plugin` in-process, as the
  executable runs it) and daemon mode (`netplex daemon` plus the stdlib shim, both real
  processes): a NAD with a resourceName, the pod-resources gRPC double saying which PCI
  addresses the pod got, network-status `device-info`, DEL, the NICs back on the node,
  and a second pod reusing a NIC.

Every test leaves the NICs as it found them (down, original names, no addresses)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni import skel
from delegates.hostdevice import plugin as hostdevice
from delegates.netlink import netns
from meta import plugin, shim
from tests.kube.podresources_double import PodResourcesDouble
from tests.netns.conftest import ip_json, ns_name

RESOURCE = "example.com/virtio_nic"
NETPLEX = str(Path(sys.executable).with_name("netplex"))
DAEMON_START = 300.0  # seconds: Python imports are ~20x slower under emulation


def guest_nics() -> dict[str, tuple[str, str]]:
    """name -> (PCI address, MAC) of the guest's PCI NICs in its own namespace."""
    found = {}
    for name in sorted(os.listdir("/sys/class/net")):
        device = os.path.realpath(f"/sys/class/net/{name}/device")
        if os.path.basename(device).startswith("virtio"):
            pci = os.path.basename(os.path.dirname(device))
            found[name] = (pci, Path(f"/sys/class/net/{name}/address").read_text().strip())
    return found


@pytest.fixture
def nics() -> Iterator[dict[str, tuple[str, str]]]:
    before = guest_nics()
    assert len(before) >= 2, f"the vm lane gives the guest PCI NICs; found {before}"
    yield before
    after = guest_nics()
    assert after == before, f"NICs not back on the node as they were: {before} -> {after}"
    for name in after:
        link = ip_json("-d", "link", "show", "dev", name)[0]
        assert "UP" not in link["flags"] and not link.get("ifalias"), link
        assert ip_json("addr", "show", "dev", name)[0].get("addr_info", []) == []


@pytest.fixture
def pods() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for path in made:
        netns.remove(ns_name(path))


def new_pod(pods: list[str]) -> str:
    path = netns.create(netns.unique_name("nfv-"))
    pods.append(path)
    return path


def call(the_plugin: skel.Plugin, command: str, conf: dict[str, Any], *, container: str, netns_path: str,
         ifname: str, cni_args: str = "") -> tuple[int, Any]:
    environ = {"CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": netns_path,
               "CNI_IFNAME": ifname, "CNI_PATH": str(Path(NETPLEX).parent), "CNI_ARGS": cni_args}
    out = io.StringIO()
    rc = skel.run(the_plugin, environ=environ, stdin=io.BytesIO(json.dumps(conf).encode()), stdout=out)
    return rc, json.loads(out.getvalue()) if out.getvalue().strip() else None


def static(address: str) -> dict[str, Any]:
    return {"type": "static", "addresses": [{"address": address}]}


def test_host_device_by_pci_bus_id_and_by_device_carries_traffic_and_gives_the_nics_back(
    nics: dict[str, tuple[str, str]], pods: list[str]
) -> None:
    (first, (pci0, mac0)), (second, (_, mac1)) = list(nics.items())[:2]
    pod_a, pod_b = new_pod(pods), new_pod(pods)
    by_pci = {"cniVersion": "1.1.0", "name": "hd", "type": "host-device", "pciBusID": pci0,
              "ipam": static("10.80.0.1/24")}
    by_name = {"cniVersion": "1.1.0", "name": "hd", "type": "host-device", "device": second,
               "ipam": static("10.80.0.2/24")}

    rc, result = call(hostdevice.PLUGIN, "ADD", by_pci, container="a", netns_path=pod_a, ifname="net1")
    assert rc == 0, result
    assert result["interfaces"] == [{"name": "net1", "mac": mac0, "mtu": 1500, "sandbox": pod_a, "pciID": pci0}]
    rc, result = call(hostdevice.PLUGIN, "ADD", by_name, container="b", netns_path=pod_b, ifname="net1")
    assert rc == 0, result
    assert first not in guest_nics() and second not in guest_nics()
    assert ip_json("link", "show", "dev", "net1", ns=pod_b)[0]["address"] == mac1
    ping = subprocess.run(["ip", "netns", "exec", ns_name(pod_a), "ping", "-c", "1", "-W", "5", "10.80.0.2"],
                          capture_output=True, text=True, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr  # pod to pod through the NICs and the hub
    checked = by_name | {"prevResult": result}
    assert call(hostdevice.PLUGIN, "CHECK", checked, container="b", netns_path=pod_b, ifname="net1")[0] == 0
    # another attachment's CHECK of that interface: not the device it moved
    assert call(hostdevice.PLUGIN, "CHECK", checked, container="x", netns_path=pod_b, ifname="net1")[0] != 0

    for conf, container, pod in ((by_pci, "a", pod_a), (by_name, "b", pod_b)):
        rc, answer = call(hostdevice.PLUGIN, "DEL", conf, container=container, netns_path=pod, ifname="net1")
        assert rc == 0, answer


def test_a_nic_whose_pod_namespace_was_deleted_comes_back_through_del(
    nics: dict[str, tuple[str, str]], pods: list[str]
) -> None:
    name, (_, mac) = next(iter(nics.items()))
    pod = new_pod(pods)
    conf = {"cniVersion": "1.0.0", "name": "hd", "type": "host-device", "device": name,
            "ipam": static("10.80.1.1/24")}
    assert call(hostdevice.PLUGIN, "ADD", conf, container="gone", netns_path=pod, ifname="data0")[0] == 0
    netns.remove(ns_name(pod))
    pods.remove(pod)
    returned = [link for link in ip_json("-d", "link", "show") if link["address"] == mac]
    assert returned and returned[0]["ifname"] != name  # the kernel gave it back under its pod name

    for _ in range(2):
        rc, answer = call(hostdevice.PLUGIN, "DEL", conf, container="gone", netns_path=pod, ifname="data0")
        assert rc == 0, answer


# --- the resourceName flow through netplex ----------------------------------------------

MANIFESTS = """
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: cluster, namespace: kube-system}}
spec:
  config: '{{"cniVersion": "1.0.0", "type": "bridge", "bridge": "nfvbr0",
            "ipam": {{"type": "host-local", "subnet": "10.82.0.0/24", "dataDir": "{data}"}}}}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: fastnet
  namespace: default
  annotations: {{k8s.v1.cni.cncf.io/resourceName: {resource}}}
spec:
  config: '{{"cniVersion": "1.0.0", "type": "host-device", "capabilities": {{"deviceID": true}},
            "ipam": {{"type": "host-local", "subnet": "10.81.0.0/24", "dataDir": "{data}"}}}}'
---
apiVersion: v1
kind: Pod
metadata:
  name: cnf1
  namespace: default
  annotations: {{k8s.v1.cni.cncf.io/networks: "fastnet@fast0, fastnet@fast1"}}
---
apiVersion: v1
kind: Pod
metadata:
  name: cnf2
  namespace: default
  annotations: {{k8s.v1.cni.cncf.io/networks: fastnet}}
"""


class Netplex:
    """netplex for one mode: `thin` runs meta.plugin in-process as the executable does;
    `daemon` runs `netplex daemon` and execs the shim for every call."""

    def __init__(self, mode: str, root: Path, conf: dict[str, Any]) -> None:
        self.mode = mode
        self.conf = conf
        self.socket = str(root / "netplex.sock")
        self.daemon: subprocess.Popen[bytes] | None = None
        self.log = root / "daemon.log"
        if mode == "daemon":
            config = root / "daemon.json"
            config.write_text(json.dumps({"socketPath": self.socket, "nodeName": "vm",
                                          "localNetworks": conf["localNetworks"]}))
            with open(self.log, "wb") as log:
                self.daemon = subprocess.Popen([sys.executable, "-m", "meta.daemon", "--config", str(config)],
                                               stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            client = shim.Client(self.socket, timeout=10.0)
            deadline = time.monotonic() + DAEMON_START
            while not client.wait_ready(1.0):
                assert self.daemon.poll() is None, self.log.read_text()[-3000:]
                assert time.monotonic() < deadline, "netplex daemon not ready"

    def __call__(self, command: str, *, pod: str, container: str, name: str) -> tuple[int, Any]:
        cni_args = f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}"
        if self.mode == "thin":
            return call(plugin.PLUGIN, command, self.conf, container=container, netns_path=pod, ifname="eth0",
                        cni_args=cni_args)
        env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": container,
               "CNI_NETNS": pod, "CNI_IFNAME": "eth0", "CNI_PATH": str(Path(NETPLEX).parent), "CNI_ARGS": cni_args}
        proc = subprocess.run([NETPLEX], input=json.dumps(self.conf | {"daemonSocket": self.socket}).encode(),
                              env=env, capture_output=True, timeout=DAEMON_START, check=False)
        out = proc.stdout.decode()
        return proc.returncode, json.loads(out) if out.strip() else None

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.terminate()
            assert self.daemon.wait(60) == 0, self.log.read_text()[-3000:]


@pytest.fixture(params=["thin", "daemon"])
def netplex(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Netplex, PodResourcesDouble, Path]]:
    manifests = tmp_path / "networks"
    manifests.mkdir()
    (manifests / "nfv.yaml").write_text(MANIFESTS.format(data=tmp_path / "ipam", resource=RESOURCE))
    conf = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "cluster",
            "localNetworks": str(manifests), "cniDir": str(tmp_path / "cni"), "binDir": "/nonexistent",
            "podResourcesSocket": str(tmp_path / "kubelet.sock"), "deviceInfoDir": str(tmp_path / "devinfo")}
    with PodResourcesDouble(tmp_path / "kubelet.sock") as kubelet:
        runner = Netplex(request.param, tmp_path, conf)
        try:
            yield runner, kubelet, manifests
        finally:
            runner.close()


def test_resource_name_flow_hands_each_network_a_pci_nic_and_a_second_pod_reuses_one(
    netplex: tuple[Netplex, PodResourcesDouble, Path], nics: dict[str, tuple[str, str]], pods: list[str]
) -> None:
    run, kubelet, manifests = netplex
    (name0, (pci0, mac0)), (name1, (pci1, mac1)) = list(nics.items())[:2]
    kubelet.allocate("default", "cnf1", RESOURCE, [pci1, pci0])
    pod = new_pod(pods)

    rc, result = run("ADD", pod=pod, container="cnf1", name="cnf1")

    assert rc == 0, result
    in_pod = {link["ifname"]: link["address"] for link in ip_json("link", "show", ns=pod)}
    assert in_pod["fast0"] == mac0 and in_pod["fast1"] == mac1  # sorted PCI addresses, in plan order
    assert name0 not in guest_nics() and name1 not in guest_nics()
    status = json.loads((manifests / "status" / "default_cnf1.json").read_text())
    infos = {element["interface"]: element.get("device-info") for element in status}
    assert infos["fast0"] == {"type": "pci", "version": "1.1.0", "pci": {"pci-address": pci0}}
    assert infos["fast1"] == {"type": "pci", "version": "1.1.0", "pci": {"pci-address": pci1}}
    assert infos["eth0"] is None

    rc, answer = run("DEL", pod=pod, container="cnf1", name="cnf1")
    assert rc == 0, answer
    assert {name0, name1} <= set(guest_nics())

    kubelet.allocate("default", "cnf2", RESOURCE, [pci0])
    second = new_pod(pods)
    rc, result = run("ADD", pod=second, container="cnf2", name="cnf2")
    assert rc == 0, result
    assert {link["ifname"]: link["address"] for link in ip_json("link", "show", ns=second)}["net1"] == mac0
    rc, answer = run("DEL", pod=second, container="cnf2", name="cnf2")
    assert rc == 0, answer
