"""Daemon mode without Kubernetes: `netplex daemon` on a local manifest directory (the
setup `netplex demo` uses), in a throwaway node namespace, driven through the shim.

The same pods attached in thin mode and in daemon mode must come out the same: the same
interfaces in the same order, addresses from the same subnets, the same network-status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from delegates.netlink import links
from meta import demo
from tests.kube.runners import Answer, Runner, ThinRunner
from tests.kube.runners_daemon import DaemonRunner
from tests.netns.conftest import ip_json

NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"


@pytest.fixture
def manifests(tmp_path: Path, host_ns: str) -> Path:
    """The demo's networks (a bridge cluster network, a bridge and a macvlan NAD) and
    pods, with an uplink veth in the node namespace as the macvlan master."""
    uplink = f"upl-{uuid.uuid4().hex[:6]}"
    links.create_veth(host_name=uplink, peer_name=f"{uplink}p", peer_netns=host_ns, host_netns=host_ns)
    links.set_up(host_ns, f"{uplink}p")
    directory = tmp_path / "networks"
    directory.mkdir()
    for manifest in sorted(demo.MANIFESTS.glob("*.yaml")):
        text = manifest.read_text().replace("@DATA@", str(tmp_path)).replace("@UPLINK@", uplink)
        (directory / manifest.name).write_text(text)
    return directory


@pytest.fixture
def make_runner(host_ns: str, tmp_path: Path) -> Iterator[Callable[[Callable[..., Runner]], Runner]]:
    made: list[Runner] = []

    def make(kind: Callable[..., Runner]) -> Runner:
        workdir = tmp_path / f"runner-{len(made)}"
        workdir.mkdir()
        runner = kind(node_ns=host_ns, workdir=workdir)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


def _conf(manifests: Path, cni_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "demo-cluster",
        "localNetworks": str(manifests), "cniDir": str(cni_dir), "binDir": str(Path(sys.executable).parent),
    }


def _cni_args(pod: str, container_id: str) -> str:
    return f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={container_id}"


def _shape(answer: Answer) -> dict[str, Any]:
    """What must match between modes: interface names and sandboxes, IP subnets, routes."""
    assert answer.rc == 0, answer.doc
    doc = answer.doc
    return {
        "interfaces": [(i["name"].startswith("veth"), bool(i.get("sandbox"))) for i in doc["interfaces"]],
        "ips": [(ip["address"].rsplit(".", 1)[0], ip.get("gateway"), ip["interface"]) for ip in doc["ips"]],
        "routes": doc.get("routes"),
        "cniVersion": doc["cniVersion"],
    }


def _status_shape(manifests: Path, pod: str) -> list[tuple[str, str, bool]]:
    text = (manifests / "status" / f"default_{pod}.json").read_text()
    return [(entry["name"], entry["interface"], entry.get("default", False)) for entry in json.loads(text)]


def test_daemon_on_local_manifests_attaches_as_thin_mode_does(
    make_runner: Callable[[Callable[..., Runner]], Runner], make_ns: Callable[..., str], manifests: Path, tmp_path: Path
) -> None:
    conf = _conf(manifests, tmp_path / "cni")
    shapes = {}
    for kind in (ThinRunner, DaemonRunner):
        runner = make_runner(kind)
        for pod in ("pod-a", "pod-b"):
            sandbox = make_ns("npp-", lo_up=True)
            container_id = f"c{uuid.uuid4().hex}"
            cni_args = _cni_args(pod, container_id)
            answer = runner.add(conf, container_id=container_id, netns=sandbox, cni_args=cni_args)
            shapes[runner.name, pod] = (
                _shape(answer), [link["ifname"] for link in ip_json("link", "show", ns=sandbox)],
                _status_shape(manifests, pod),
            )
            assert runner.delete(conf, container_id=container_id, netns=sandbox, cni_args=cni_args).rc == 0
            assert [link["ifname"] for link in ip_json("link", "show", ns=sandbox)] == ["lo"]
    for pod in ("pod-a", "pod-b"):
        assert shapes["thin", pod] == shapes["daemon", pod]
    assert [s[:2] for s in shapes["daemon", "pod-b"][2]] == [
        ("kube-system/demo-cluster", "eth0"), ("default/blue", "blue0"), ("default/red", "net2"),
    ]
    assert not list((tmp_path / "cni" / "cache").glob("*.json"))


def test_daemon_sees_a_manifest_added_after_it_started(
    make_runner: Callable[[Callable[..., Runner]], Runner], make_ns: Callable[..., str], manifests: Path, tmp_path: Path
) -> None:
    conf = _conf(manifests, tmp_path / "cni")
    runner = make_runner(DaemonRunner)
    assert isinstance(runner, DaemonRunner)
    runner.start()
    (manifests / "late.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: late\n  annotations:\n"
        "    k8s.v1.cni.cncf.io/networks: red\n"
    )
    sandbox = make_ns("npp-", lo_up=True)
    answer = runner.add(conf, container_id="late1", netns=sandbox, cni_args=_cni_args("late", "late1"))
    assert answer.rc == 0, answer.doc
    assert [link["ifname"] for link in ip_json("link", "show", ns=sandbox)] == ["lo", "eth0", "net1"]
    assert runner.delete(conf, container_id="late1", netns=sandbox, cni_args=_cni_args("late", "late1")).rc == 0


def test_socket_is_private_to_root(host_ns: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="netplex-socket-"))  # in /tmp: others may traverse it
    workdir.chmod(0o755)
    runner = DaemonRunner(node_ns=host_ns, workdir=workdir)
    try:
        runner.start()
        assert os.stat(runner.socket_path).st_mode & 0o777 == 0o600
        # Another user is turned away even through a loosened mode: peer credentials are checked.
        os.chmod(runner.socket_path, 0o666)
        probe = (
            "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
            "s.sendall(b'GET /healthz HTTP/1.0\\r\\n\\r\\n'); print(s.recv(100).split()[1].decode())"
        )
        nobody = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-I", "-c", probe,
             runner.socket_path],
            capture_output=True, text=True, timeout=30, check=False,
        )
        assert nobody.stdout.strip() == "403", nobody.stderr
    finally:
        runner.close()
        shutil.rmtree(workdir, ignore_errors=True)
