"""`netplex status --kernel`: the cache against a real namespace; an interface renamed or
deleted behind netplex's back shows as drift, and the exit code says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from meta import cache
from tests.netns.conftest import ip_json, ns_name

pytestmark = pytest.mark.netns
NETPLEX = str(Path(sys.executable).with_name("netplex"))


def _ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns_name(ns), *args], check=True)


def _record(cni_dir: Path, container_id: str, netns: str, macs: dict[str, str]) -> None:
    attachments = [
        cache.CachedAttachment(
            network=f"default/{ifname}", ifname=ifname, conflist={"name": ifname, "plugins": []}, state="added",
            result={"cniVersion": "1.0.0", "interfaces": [{"name": ifname, "mac": mac, "sandbox": netns}]},
        )
        for ifname, mac in macs.items()
    ]
    entry = cache.CacheEntry(container_id=container_id, ifname="eth0", netns=netns, pod_namespace="default",
                             pod_name="web", attachments=attachments)
    cache.write(str(cni_dir), entry)


def test_status_kernel_flags_an_interface_renamed_or_gone(container_ns: str, tmp_path: Path) -> None:
    _ip(container_ns, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
    _ip(container_ns, "link", "add", "net1", "type", "veth", "peer", "name", "peer1")
    _ip(container_ns, "link", "add", "net2", "type", "veth", "peer", "name", "peer2")
    macs = {link["ifname"]: link["address"] for link in ip_json("link", "show", ns=container_ns)
            if link["ifname"] in ("eth0", "net1", "net2")}
    _record(tmp_path, "c1", container_ns, macs)
    _record(tmp_path, "c2", "/run/netns/does-not-exist-anymore", {"eth0": "02:00:00:00:00:01"})

    clean = subprocess.run([NETPLEX, "status", "--kernel", "--cni-dir", str(tmp_path), "--pod", "default/web"],
                           capture_output=True, text=True, check=False)
    assert clean.returncode == 1  # c2's namespace is gone
    _ip(container_ns, "link", "set", "net1", "name", "renamed1")
    _ip(container_ns, "link", "del", "net2")
    out = subprocess.run([NETPLEX, "status", "--kernel", "--cni-dir", str(tmp_path)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1, out.stderr
    cells = [line.split() for line in out.stdout.splitlines()[1:]]
    rows = {(cell[0], cell[1], cell[3]): " ".join(cell[6:]) for cell in cells}
    assert rows == {
        ("default/web", "c1", "eth0"): "ok",
        ("default/web", "c1", "net1"): "renamed to renamed1",
        ("default/web", "c1", "net2"): "gone",
        ("default/web", "c2", "eth0"): "netns gone",
    }, out.stdout


def test_status_kernel_exits_0_when_every_interface_is_there(container_ns: str, tmp_path: Path) -> None:
    _ip(container_ns, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
    mac = next(link["address"] for link in ip_json("link", "show", ns=container_ns) if link["ifname"] == "eth0")
    _record(tmp_path, "c1", container_ns, {"eth0": mac})
    out = subprocess.run([NETPLEX, "status", "--kernel", "--cni-dir", str(tmp_path)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0].split()[-1] == "KERNEL"
    assert out.stdout.splitlines()[1].split()[-1] == "ok"
