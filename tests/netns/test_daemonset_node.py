"""The shipped daemon-mode DaemonSet on a fake host tree H: the init container's
`netplex install` (its arguments from manifests/daemonset.yaml, with /host at H), then
`netplex daemon` with the ConfigMap's daemon.json (hostRoot and chrootDir at H), then a
pod ADD and DEL through the installed shim, chrooted into H as the runtime on the node
would run it.

- The node's primary CNI plugin is not built in: a recording stand-in (a busybox shell
  script at H/opt/cni/bin/recorder) must run chrooted into H, see the node's files and
  find the pod's namespace at the path it was given.
- The config's readiness indicator file is a node path too (/var/run/flannel/...): the
  daemon must find it under hostRoot, or no ADD would proceed.
- The runtime gives the namespace as the node sees it (/var/run/nodens/<name>, which
  exists only in H, through H's /var/run -> /run link): the daemon must find it under
  hostRoot and enter it, so the built-in bridge puts net1 into the pod namespace."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meta import shim
from tests.netns.conftest import ip_json, ns_name
from tests.netns.nodetree import CHROOT, IP, BareNode, install, mount, unmount_all

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = shutil.which("busybox", path="/bin:/usr/bin") or "/bin/busybox"
SIDE_SUBNET = "10.184.0.0/24"
RECORDER = """\
#!/bin/busybox sh
# A stand-in for the node's primary CNI plugin: writes down what it sees, answers as a plugin.
b=/bin/busybox
$b mkdir -p /var/lib/recorder
{
  echo "netns=$CNI_NETNS"
  if [ -e "$CNI_NETNS" ]; then echo "netns-visible=yes"; fi
  echo "marker=$($b cat /etc/node-marker)"
  echo "root=$($b ls / | $b tr '\\n' ' ')"
} > "/var/lib/recorder/$CNI_COMMAND"
$b cat > "/var/lib/recorder/$CNI_COMMAND.stdin"
case "$CNI_COMMAND" in
  ADD) printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[]}\\n' \\
         "$CNI_IFNAME" "$CNI_NETNS" ;;
  VERSION) printf '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}\\n' ;;
esac
"""


def manifest(kind: str, path: str) -> dict[str, Any]:
    [doc] = [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d["kind"] == kind]
    assert isinstance(doc, dict)
    return doc


class FakeHost:
    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.root = scratch / "host"
        self.marker = uuid.uuid4().hex
        self.mounts: list[Path] = []

    def inside(self, node_path: str) -> Path:
        return self.root / node_path.lstrip("/")


@pytest.fixture
def fake_host(bare_node: BareNode, tmp_path: Path) -> Iterator[FakeHost]:
    """H: the node's CNI directories, its primary config (the recorder), busybox, a
    marker file, /var/run -> /run as on most nodes, and the release netplex install
    already put at /opt/netplex on the bare node (hard links: the session builds one)."""
    host = FakeHost(tmp_path)
    for directory in ("opt/cni/bin", "etc/cni/net.d", "bin", "run/nodens", "var"):
        host.inside(directory).mkdir(parents=True)
    host.inside("/var/run").symlink_to("/run")
    host.inside("/etc/node-marker").write_text(host.marker + "\n")
    shutil.copy2(BUSYBOX, host.inside("/bin/busybox"))
    recorder = host.inside("/opt/cni/bin/recorder")
    recorder.write_text(RECORDER)
    recorder.chmod(0o755)
    host.inside("/etc/cni/net.d/10-nodenet.conf").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "nodenet", "type": "recorder"})
    )
    subprocess.run(["cp", "-al", str(bare_node.inside("/opt/netplex")), str(host.inside("/opt/netplex"))], check=True)
    try:
        yield host
    finally:
        unmount_all(host.mounts)


def init_container_args(host: FakeHost, config: Path) -> list[str]:
    """The DaemonSet's init container arguments, with the pod's /host at H."""
    daemonset = manifest("DaemonSet", "manifests/daemonset.yaml")
    [init] = daemonset["spec"]["template"]["spec"]["initContainers"]
    assert init["command"] == ["netplex", "install"]
    return [
        f"--config={config}" if arg.startswith("--config=") else arg.replace("=/host", f"={host.root}")
        for arg in init["args"]
    ]


@pytest.fixture
def node_netns(fake_host: FakeHost, container_ns: str) -> str:
    """The pod namespace bound at H/run/nodens/<name>, before the daemon starts: its mount
    namespace is a copy of this one (in a pod, HostToContainer propagation brings later
    ones). Returns the path as the node names it, through its /var/run link (it does not
    exist outside H)."""
    name = ns_name(container_ns)
    target = fake_host.inside(f"/run/nodens/{name}")
    target.touch()
    mount("--bind", container_ns, str(target))
    fake_host.mounts.append(target)
    node_path = f"/var/run/nodens/{name}"
    assert not os.path.exists(node_path)
    return node_path


@pytest.fixture
def installed_daemon(fake_host: FakeHost, host_ns: str, node_netns: str) -> Iterator[FakeHost]:
    """Install as the init container does, then start the daemon as the daemon container
    does (in the node namespace), with the ConfigMap's daemon.json."""
    host, scratch = fake_host, fake_host.scratch
    networks = scratch / "networks"
    networks.mkdir()
    side = {"cniVersion": "1.0.0", "name": "side", "type": "bridge", "bridge": f"nps{uuid.uuid4().hex[:8]}",
            "ipam": {"type": "host-local", "subnet": SIDE_SUBNET, "dataDir": str(scratch / "ipam")}}
    (networks / "networks.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
         "metadata": {"name": "side", "namespace": "default"}, "spec": {"config": json.dumps(side)}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "web", "namespace": "default", "annotations": {"k8s.v1.cni.cncf.io/networks": "side"}}},
    ]))
    configmap = manifest("ConfigMap", "manifests/configmap.yaml")["data"]
    netplex_json = scratch / "netplex.json"
    netplex_json.write_text(configmap["netplex.json"])
    # The primary CNI's readiness file, as the manifest's commented-out option names it: the
    # installer waits for it, and the daemon must find it under hostRoot before each ADD.
    host.inside("/run/flannel").mkdir(parents=True)
    host.inside("/run/flannel/subnet.env").write_text("FLANNEL_NETWORK=10.244.0.0/16\n")
    args = [arg for arg in init_container_args(host, netplex_json) if arg != "--once"]
    answer = install(host.root, *args, "--readiness-indicator-file=/var/run/flannel/subnet.env")
    assert answer.returncode == 0, answer.stderr
    assert "is already installed" in answer.stderr  # the session's release, hard-linked in

    daemon_conf = json.loads(configmap["daemon.json"])
    assert daemon_conf["hostRoot"] == daemon_conf["chrootDir"] == "/host"
    daemon_conf.update({
        "hostRoot": str(host.root), "chrootDir": str(host.root),  # the pod's /host
        "socketPath": str(host.inside(daemon_conf["socketPath"])),  # the pod's hostPath /run/netplex
        "cniDir": str(scratch / "cni"), "localNetworks": str(networks), "logLevel": "info",
    })
    config = scratch / "daemon.json"
    config.write_text(json.dumps(daemon_conf))
    log = open(scratch / "daemon.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [IP, "netns", "exec", ns_name(host_ns), sys.executable, "-m", "meta.daemon", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
    )
    try:
        if not shim.Client(daemon_conf["socketPath"], timeout=5).wait_ready(60):
            pytest.fail(f"the daemon did not become ready: {(scratch / 'daemon.log').read_text()}")
        yield host
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_the_daemonset_runs_node_plugins_chrooted_and_enters_the_node_path_netns(
    installed_daemon: FakeHost, node_netns: str, host_ns: str, container_ns: str
) -> None:
    host, netns = installed_daemon, node_netns
    conflist = json.loads(host.inside("/etc/cni/net.d/00-netplex.conflist").read_text())
    [entry] = conflist["plugins"]
    assert entry["daemonSocket"] == "/run/netplex/netplex.sock"  # the init container's --daemon-socket
    assert entry["readinessindicatorfile"] == "/var/run/flannel/subnet.env"  # not there outside H
    assert not os.path.exists(entry["readinessindicatorfile"])
    stdin = json.dumps({"cniVersion": conflist["cniVersion"], "name": conflist["name"], **entry}).encode()
    container_id = f"ds{uuid.uuid4().hex[:14]}"

    def shim_call(command: str) -> subprocess.CompletedProcess[bytes]:
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
               "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"}
        return subprocess.run([IP, "netns", "exec", ns_name(host_ns), CHROOT, str(host.root), "/opt/cni/bin/netplex"],
                              input=stdin, env=env, capture_output=True, timeout=120, check=False)

    add = shim_call("ADD")
    assert add.returncode == 0, add.stdout.decode() + add.stderr.decode() + (host.scratch / "daemon.log").read_text()
    seen = dict(line.split("=", 1) for line in host.inside("/var/lib/recorder/ADD").read_text().splitlines())
    assert seen["marker"] == host.marker  # it ran in the node's filesystem view
    assert seen["netns"] == f"/run/nodens/{ns_name(container_ns)}"  # the namespace as the node sees it
    assert seen["netns-visible"] == "yes"
    assert set(seen["root"].split()) == {"bin", "etc", "opt", "run", "var"}  # H's /, not this machine's
    assert not os.path.exists("/var/lib/recorder")

    kernel = {link["ifname"]: [i["local"] for i in link.get("addr_info", []) if i["family"] == "inet"]
              for link in ip_json("addr", "show", ns=container_ns) if link["ifname"] != "lo"}
    assert set(kernel) == {"net1"}  # the built-in bridge entered the namespace the node path named
    assert ipaddress.ip_address(kernel["net1"][0]) in ipaddress.ip_network(SIDE_SUBNET)
    result = json.loads(add.stdout)
    assert result["interfaces"][0]["name"] == "eth0"

    delete = shim_call("DEL")
    assert delete.returncode == 0, delete.stdout.decode() + delete.stderr.decode()
    assert host.inside("/var/lib/recorder/DEL").is_file()
    assert [link["ifname"] for link in ip_json("link", "show", ns=container_ns)] == ["lo"]
