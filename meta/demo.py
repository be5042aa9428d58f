"""`netplex demo`: two pods, three networks each, on this machine, through the real
`netplex` executable exactly as a runtime calls it (env + stdin, a subprocess).

Everything happens in namespaces the demo makes: a throwaway "node" namespace holds the
bridges and the macvlan uplink, so the host's own interfaces are never touched. The
networks come from the local manifest directory (meta/demo_cluster), the default source
when no kubeconfig is set. At the end every pod is DELeted and the demo shows that
nothing is left; the namespaces go in any case."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meta import nodestatus

MANIFESTS = Path(__file__).with_name("demo_cluster")
PODS = ("pod-a", "pod-b")
CNI_VERSION = "1.0.0"


@dataclass(frozen=True)
class Scene:
    tag: str
    scratch: Path
    node_ns: str
    pod_ns: dict[str, str]
    uplink: str

    @property
    def cni_dir(self) -> Path:
        return self.scratch / "cni"

    @property
    def ipam_dir(self) -> Path:
        return self.scratch / "ipam"


def run(*, keep: bool = False) -> int:
    if os.geteuid() != 0:
        print("netplex demo needs root: it creates network namespaces, bridges and veths.", file=sys.stderr)
        return 1
    missing = [tool for tool in ("ip", "ping") if shutil.which(tool) is None]
    if missing:
        print(f"netplex demo needs {', '.join(missing)} (run `make demo`, which installs them)", file=sys.stderr)
        return 1
    scene = _make_scene()
    try:
        return _play(scene, keep=keep)
    finally:
        if not keep:
            _teardown(scene)


def _play(scene: Scene, *, keep: bool) -> int:
    print(f"netplex demo: node namespace {scene.node_ns}, pods {', '.join(scene.pod_ns.values())}")
    print(f"networks from {scene.scratch / 'networks'} (the local default: no Kubernetes needed)\n")
    container_ids = {pod: f"demo{uuid.uuid4().hex[:12]}" for pod in PODS}
    for pod in PODS:
        answer = _cni("ADD", scene, pod, container_ids[pod])
        if answer.returncode != 0:
            print(f"ADD of {pod} failed: {answer.stdout.strip() or answer.stderr.strip()}", file=sys.stderr)
            return 1
        result = json.loads(answer.stdout)
        print(f"ADD {pod}: {len(result.get('interfaces', []))} interfaces, "
              f"pod IP {', '.join(ip['address'] for ip in result.get('ips', []))}")
    print()
    addresses = {pod: _pod_addresses(scene.pod_ns[pod]) for pod in PODS}
    _print_pods(addresses)
    _print_network_status(scene)
    print(nodestatus.format_table(_cache_rows(scene)) + "\n")
    failures = _ping_everything(scene, addresses)
    if keep:
        print(f"--keep: pods left attached; scratch dir {scene.scratch}")
        return 1 if failures else 0
    for pod in PODS:
        for attempt in ("DEL", "DEL"):  # a runtime may DEL twice; the second is a no-op
            answer = _cni(attempt, scene, pod, container_ids[pod])
            if answer.returncode != 0:
                print(f"{attempt} of {pod} failed: {answer.stdout.strip()}", file=sys.stderr)
                failures += 1
    print("DEL of both pods (each twice): done")
    leftovers = _leftovers(scene)
    for line in leftovers:
        print(f"  LEFT BEHIND: {line}")
    if not leftovers:
        print("nothing left: no pod interfaces, no host veths, no reserved IPs, no cache "
              "(the bridges stay, as the reference bridge plugin leaves them)")
    return 1 if failures or leftovers else 0


def _make_scene() -> Scene:
    from delegates.netlink import links, netns

    tag = uuid.uuid4().hex[:6]
    scratch = Path(tempfile.mkdtemp(prefix="netplex-demo-"))
    node_ns = f"npdemo-node-{tag}"
    pods = {pod: f"npdemo-{pod}-{tag}" for pod in PODS}
    uplink = f"npup{tag[:4]}"
    netns.create(node_ns)
    for name in pods.values():
        netns.create(name)
    node = netns.path_for(node_ns)
    links.create_veth(host_name=uplink, peer_name=f"{uplink}p", peer_netns=node, host_netns=node)
    for name in ("lo", uplink, f"{uplink}p"):
        links.set_up(node, name)
    networks = scratch / "networks"
    networks.mkdir()
    for manifest in sorted(MANIFESTS.glob("*.yaml")):
        text = manifest.read_text().replace("@DATA@", str(scratch)).replace("@UPLINK@", uplink)
        (networks / manifest.name).write_text(text)
    return Scene(tag=tag, scratch=scratch, node_ns=node_ns, pod_ns=pods, uplink=uplink)


def _teardown(scene: Scene) -> None:
    from delegates.netlink import netns

    for name in [*scene.pod_ns.values(), scene.node_ns]:
        netns.remove(name)
    shutil.rmtree(scene.scratch, ignore_errors=True)


def _meta_conf(scene: Scene) -> dict[str, Any]:
    return {
        "cniVersion": CNI_VERSION,
        "name": "netplex",
        "type": "netplex",
        "clusterNetwork": "demo-cluster",
        "localNetworks": str(scene.scratch / "networks"),
        "cniDir": str(scene.cni_dir),
        "binDir": str(Path(sys.executable).parent),
    }


def _cni(command: str, scene: Scene, pod: str, container_id: str) -> subprocess.CompletedProcess[str]:
    """One CNI call of the real `netplex` executable, inside the node namespace."""
    from delegates.netlink import netns

    executable = shutil.which("netplex", path=str(Path(sys.executable).parent)) or "netplex"
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns.path_for(scene.pod_ns[pod]),
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(Path(sys.executable).parent),
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};"
                    f"K8S_POD_INFRA_CONTAINER_ID={container_id}",
    }
    return subprocess.run(
        ["ip", "netns", "exec", scene.node_ns, executable],
        input=json.dumps(_meta_conf(scene)), env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def _pod_addresses(pod_ns: str) -> list[tuple[str, str, str, list[str]]]:
    """(ifname, kind, mac, addresses) of a pod's interfaces, as the kernel reports them."""
    from delegates.netlink import addrs, links, netns

    path = netns.path_for(pod_ns)
    rows = []
    for link in links.list_links(path):
        if link.name == "lo":
            continue
        found = [str(a) for a in addrs.list_addrs(path, link.name)]
        rows.append((link.name, link.kind or "-", link.mac, found))
    return rows


def _print_pods(addresses: dict[str, list[tuple[str, str, str, list[str]]]]) -> None:
    rows: list[tuple[str, ...]] = [("POD", "IFNAME", "KIND", "MAC", "ADDRESSES (from the kernel)")]
    for pod, interfaces in addresses.items():
        rows.extend((pod, name, kind, mac, ", ".join(found)) for name, kind, mac, found in interfaces)
    print(nodestatus.format_table(rows) + "\n")


def _print_network_status(scene: Scene) -> None:
    from meta.local import LocalSource

    source = LocalSource(str(scene.scratch / "networks"))
    for pod in PODS:
        annotation = source.get_pod("default", pod).annotations.get("k8s.v1.cni.cncf.io/network-status", "")
        print(f"{pod} k8s.v1.cni.cncf.io/network-status:")
        for entry in json.loads(annotation or "[]"):
            print(f"  {json.dumps(entry, sort_keys=True)}")
    print()


def _cache_rows(scene: Scene) -> list[tuple[str, ...]]:
    from meta import cache

    rows: list[tuple[str, ...]] = [("POD", "NETWORK", "IFNAME", "STATE")]
    for entry in cache.list_entries(str(scene.cni_dir)):
        rows.extend((entry.pod, a.network, a.ifname, a.state) for a in entry.attachments)
    return rows


def _ping_everything(scene: Scene, addresses: dict[str, list[tuple[str, str, str, list[str]]]]) -> int:
    """Ping from pod-a to every IPv4 address of pod-b, one per network."""
    failures = 0
    for ifname, _kind, _mac, found in addresses["pod-b"]:
        for address in found:
            ip = address.split("/")[0]
            if ":" in ip:
                continue
            ok = subprocess.run(
                ["ip", "netns", "exec", scene.pod_ns["pod-a"], "ping", "-c", "1", "-W", "2", ip],
                capture_output=True, check=False,
            ).returncode == 0
            failures += 0 if ok else 1
            print(f"ping pod-a -> pod-b {ip} ({ifname}): {'ok' if ok else 'FAILED'}")
    print()
    return failures


def _leftovers(scene: Scene) -> list[str]:
    from delegates.netlink import links, netns

    found = []
    for pod, name in scene.pod_ns.items():
        extra = [link.name for link in links.list_links(netns.path_for(name)) if link.name != "lo"]
        if extra:
            found.append(f"{pod} still has {', '.join(extra)}")
    own = {"lo", scene.uplink, f"{scene.uplink}p"}
    # Bridges stay, as the reference bridge plugin leaves them; they go with the node.
    node_links = [
        link.name for link in links.list_links(netns.path_for(scene.node_ns))
        if link.name not in own and link.kind != "bridge"
    ]
    if node_links:
        found.append(f"node namespace still has {', '.join(node_links)}")
    reserved = [p.name for p in scene.ipam_dir.rglob("*") if p.is_file() and p.name[0].isdigit()]
    if reserved:
        found.append(f"reserved IPs {', '.join(reserved)}")
    cached = list((scene.cni_dir / "cache").glob("*.json")) if (scene.cni_dir / "cache").exists() else []
    if cached:
        found.append(f"cache files {', '.join(p.name for p in cached)}")
    return found
