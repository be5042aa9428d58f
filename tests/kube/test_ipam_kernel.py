"""netplex-ipam in the kernel: two "nodes" (two node namespaces joined by a veth, each
running its own `netplex daemon` with its own nodeName) attach pods to one macvlan
network whose addresses come from one range; the pods get distinct addresses from their
own node's block, and ping each other across the nodes.

The API double listens on node A's loopback; node B reaches it through a small TCP relay
(a listening socket made inside node B's namespace, connections made inside node A's), so
both daemons use the same kubeconfig URL."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from delegates.netlink import links, netns
from tests.kube import runners_daemon
from tests.kube.conftest import MetaScene, ScenePod
from tests.kube.ipam_scene import IpamScene
from tests.kube.runners_daemon import DaemonRunner

pytestmark = [pytest.mark.kube, pytest.mark.netns]


class Relay:
    """Forward TCP connections from 127.0.0.1:`port` in `here` to the same in `there`."""

    def __init__(self, here: str, there: str, port: int) -> None:
        self._there = there
        self._port = port
        self._listener = netns.call(here, lambda: socket.create_server(("127.0.0.1", port)))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = netns.call(self._there, lambda: socket.create_connection(("127.0.0.1", self._port), 5))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=_pump, args=(source, sink), daemon=True)
                thread.start()
                self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        self._accepting.join()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        for thread in self._threads:
            thread.join(5)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        return


@pytest.fixture
def two_nodes(
    scene: MetaScene, make_ns: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    monkeypatch.setattr(runners_daemon, "START_TIMEOUT", 180.0)  # a daemon's start takes long on a busy machine
    node_b = make_ns("nph-", lo_up=True)
    links.create_veth(host_name="wire0", peer_name="wire0", host_netns=scene.node_ns, peer_netns=node_b, peer_up=True)
    links.set_up(scene.node_ns, "wire0")
    relay = Relay(node_b, scene.node_ns, scene.api.port)
    try:
        yield scene.node_ns, node_b
    finally:
        relay.close()


def _pod(
    scene: MetaScene, make_ns: Callable[..., str], node: str, annotations: dict[str, str] | None = None
) -> ScenePod:
    name, uid = f"vm-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    scene.api.add_pod("default", name, uid=uid, node_name=node, annotations=annotations)
    return ScenePod(
        namespace="default", name=name, uid=uid, netns=make_ns("npp-", lo_up=True),
        container_id=f"c{uuid.uuid4().hex}",
    )


def test_pods_on_two_nodes_get_one_ranges_addresses_and_ping_each_other(
    scene: MetaScene, two_nodes: tuple[str, str], make_ns: Callable[..., str],
) -> None:
    node_a, node_b = two_nodes
    ipam = IpamScene(scene.api, scene.root / "ipam-scene")
    for node in ("node-a", "node-b"):
        ipam.add_node(node)
    scene.add_nad("kube-system", "tenant", {
        "cniVersion": "1.0.0", "name": "tenant", "type": "macvlan", "master": "wire0", "mode": "bridge",
        "ipam": ipam.ipam(range="10.81.0.0/24", gateway="10.81.0.1"),
    })
    conf = scene.conf(clusterNetwork="tenant")
    runners = {
        "node-a": DaemonRunner(node_ns=node_a, workdir=scene.root / "a", daemon_keys={"nodeName": "node-a"}),
        "node-b": DaemonRunner(node_ns=node_b, workdir=scene.root / "b", daemon_keys={"nodeName": "node-b"}),
    }
    pods = {"node-a": [_pod(scene, make_ns, "node-a") for _ in range(2)],
            "node-b": [_pod(scene, make_ns, "node-b") for _ in range(2)]}
    try:
        for node, runner in runners.items():
            runner.workdir.mkdir()
            for pod in pods[node]:
                answer = runner.add(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
                assert answer.rc == 0, (answer.doc, runner.last_stderr)
        addresses = {pod.name: pod.addresses()["eth0"][0] for node_pods in pods.values() for pod in node_pods}
        assert len(set(addresses.values())) == 4
        owners = ipam.block_owners()
        for node, node_pods in pods.items():
            for pod in node_pods:
                ip = ipaddress.ip_interface(addresses[pod.name])
                assert ip.network == ipaddress.ip_network("10.81.0.0/24")
                [cidr] = [c for c in owners if ip.ip in ipaddress.ip_network(c)]
                assert owners[cidr] == node  # from its own node's block
        a, b = pods["node-a"][0], pods["node-b"][1]
        for source, target in ((a, b), (b, a)):
            ip = addresses[target.name].split("/")[0]
            subprocess.run(
                ["ip", "netns", "exec", netns_name(source.netns), "ping", "-c", "1", "-W", "3", ip],
                check=True, capture_output=True, timeout=30,
            )
        for node, runner in runners.items():
            for pod in pods[node]:
                answer = runner.delete(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
                assert answer.rc == 0, answer.doc
        assert ipam.records() == {}
        _a_claims_address_follows_the_vm_to_the_other_node(scene, ipam, runners, make_ns, conf)
    finally:
        for runner in runners.values():
            runner.close()


def _a_claims_address_follows_the_vm_to_the_other_node(
    scene: MetaScene, ipam: IpamScene, runners: dict[str, DaemonRunner], make_ns: Callable[..., str],
    conf: dict[str, object],
) -> None:
    """NPWG ipam-claim-reference through netplex: the selection names the claim, the VM's
    pod is deleted and recreated on the other node, and net1 gets the same address."""
    ipam.add_claim("default", "vm-x", network="tenant2")
    scene.add_nad("default", "tenant2", {
        "cniVersion": "1.0.0", "name": "tenant2", "type": "macvlan", "master": "wire0", "mode": "bridge",
        "ipam": ipam.ipam(range="10.82.0.0/24"),
    })
    selection = json.dumps([{"name": "tenant2", "ipam-claim-reference": "vm-x"}])
    seen = []
    for node in ("node-a", "node-b"):
        pod = _pod(scene, make_ns, node, {"k8s.v1.cni.cncf.io/networks": selection})
        runner = runners[node]
        answer = runner.add(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
        assert answer.rc == 0, (answer.doc, runner.last_stderr)
        seen.append(pod.addresses()["net1"][0])
        answer = runner.delete(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
        assert answer.rc == 0, answer.doc
        scene.api.delete_pod("default", pod.name)
    assert seen[0] == seen[1] and seen[0].startswith("10.82.0.")
    claim = ipam.claim("default", "vm-x")
    assert claim is not None and claim["status"]["ips"] == [seen[0]]
    assert [r["claim"] for r in ipam.records().values()] == ["default/vm-x"]  # held until the claim goes


def netns_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]
