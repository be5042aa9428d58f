"""The host-device delegate against the real kernel: a veth end in a throwaway "node"
namespace stands in for the NIC (`netplex-host-device` exec'd there with `ip netns exec`,
as a runtime on that node would). What happened is read back with `ip -j`.

A veth is virtual, so when its pod namespace is deleted the kernel destroys it rather
than returning it to the node (the vm lane covers real PCI NICs, which come back); the
"returned by the kernel" case is reproduced here by moving the link out by hand."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from delegates.netlink import links
from tests.netns.conftest import ip_json, ns_name

pytestmark = pytest.mark.netns

EXECUTABLE = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "netplex-host-device")


def run(command: str, conf: dict[str, Any], *, node: str, pod: str, container: str = "c1",
        ifname: str = "net1", extra_env: dict[str, str] | None = None) -> tuple[int, Any]:
    env = {
        "CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": pod, "CNI_IFNAME": ifname,
        "CNI_PATH": str(Path(EXECUTABLE).parent), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **(extra_env or {}),
    }
    proc = subprocess.run(
        ["ip", "netns", "exec", ns_name(node), EXECUTABLE], input=json.dumps(conf).encode(),
        env=env, capture_output=True, timeout=60, check=False,
    )
    out = proc.stdout.decode()
    return proc.returncode, json.loads(out) if out.strip() else None


def link_in(ns: str, name: str) -> dict[str, Any] | None:
    found = [link for link in ip_json("-d", "link", "show", ns=ns) if link["ifname"] == name]
    return found[0] if found else None


def addrs_of(ns: str, name: str) -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for link in ip_json("addr", "show", "dev", name, ns=ns)
            for a in link.get("addr_info", []) if a.get("scope") == "global"]


@pytest.fixture
def nic(host_ns: str) -> tuple[str, str]:
    """(name, MAC) of a veth end in the node namespace standing in for a NIC; its peer
    stays on the node too, so a pod's deletion destroys both."""
    name = f"nic{uuid.uuid4().hex[:8]}"
    links.create_veth(host_name=name, peer_name=f"p{name[3:]}", peer_netns=host_ns, host_netns=host_ns, mtu=1400)
    links.set_down(host_ns, name)
    link = link_in(host_ns, name)
    assert link is not None
    return name, link["address"]


def conf_for(**keys: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "hd", "type": "host-device", **keys}


STATIC = {"type": "static", "addresses": [{"address": "10.93.0.5/24", "gateway": "10.93.0.1"}],
          "routes": [{"dst": "10.94.0.0/16"}]}


def test_add_moves_the_device_in_under_the_requested_name_and_del_gives_it_back(
    host_ns: str, make_ns: Callable[..., str], nic: tuple[str, str]
) -> None:
    name, mac = nic
    pod = make_ns("npc-")
    conf = conf_for(device=name, ipam=STATIC)

    rc, result = run("ADD", conf, node=host_ns, pod=pod)

    assert rc == 0, result
    assert link_in(host_ns, name) is None
    moved = link_in(pod, "net1")
    assert moved is not None and moved["address"] == mac and moved["mtu"] == 1400
    assert "UP" in moved["flags"]
    assert addrs_of(pod, "net1") == ["10.93.0.5/24"]
    assert any(r["dst"] == "10.94.0.0/16" for r in ip_json("route", "show", ns=pod))
    assert result["interfaces"] == [{"name": "net1", "mac": mac, "sandbox": pod}]  # mtu: from CNI 1.1
    assert [ip["address"] for ip in result["ips"]] == ["10.93.0.5/24"]
    assert run("CHECK", conf | {"prevResult": result}, node=host_ns, pod=pod)[0] == 0

    for _ in range(2):  # DEL is idempotent
        rc, answer = run("DEL", conf, node=host_ns, pod=pod)
        assert rc == 0, answer
    back = link_in(host_ns, name)
    assert back is not None and back["address"] == mac
    assert "UP" not in back["flags"]
    assert addrs_of(host_ns, name) == []
    assert not back.get("ifalias")
    assert [link["ifname"] for link in ip_json("link", "show", ns=pod)] == ["lo"]


def test_a_second_pod_gets_the_device_after_the_first_ones_del(
    host_ns: str, make_ns: Callable[..., str], nic: tuple[str, str]
) -> None:
    name, mac = nic
    first, second = make_ns("npc-"), make_ns("npc-")
    conf = conf_for(hwaddr=mac.upper())
    assert run("ADD", conf, node=host_ns, pod=first, container="a")[0] == 0

    rc, refused = run("ADD", conf, node=host_ns, pod=second, container="b")
    assert rc == 1 and refused["code"] == 7 and "hwaddr" in refused["msg"]  # it is in the first pod

    assert run("DEL", conf, node=host_ns, pod=first, container="a")[0] == 0
    rc, result = run("ADD", conf, node=host_ns, pod=second, container="b", ifname="data0")
    assert rc == 0, result
    assert link_in(second, "data0") is not None
    assert run("DEL", conf, node=host_ns, pod=second, container="b", ifname="data0")[0] == 0
    assert link_in(host_ns, name) is not None


def test_device_id_from_runtime_config_or_meta_must_be_a_pci_address(
    host_ns: str, make_ns: Callable[..., str], nic: tuple[str, str]
) -> None:
    pod = make_ns("npc-")
    rc, answer = run("ADD", conf_for(deviceID="not-pci"), node=host_ns, pod=pod)
    assert (rc, answer["code"]) == (1, 7) and answer["msg"].startswith("deviceID:")
    rc, answer = run("ADD", conf_for(runtimeConfig={"deviceID": "0000:7f:1f.7"}), node=host_ns, pod=pod)
    assert (rc, answer["code"]) == (1, 7) and "0000:7f:1f.7" in answer["msg"]
    assert link_in(host_ns, nic[0]) is not None


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        (conf_for(), "device"),
        (conf_for(device="nosuchnic0"), "device"),
        (conf_for(pciBusID="00:04.0"), "pciBusID"),
        (conf_for(hwaddr="zz"), "hwaddr"),
        (conf_for(kernelpath="relative/path"), "kernelpath"),
    ],
)
def test_bad_config_is_error_7_naming_the_key(
    conf: dict[str, Any], field: str, host_ns: str, make_ns: Callable[..., str]
) -> None:
    rc, answer = run("ADD", conf, node=host_ns, pod=make_ns("npc-"))
    assert rc == 1 and answer["code"] == 7 and answer["msg"].startswith(field), answer


def test_a_taken_ifname_in_the_pod_leaves_the_device_on_the_node(
    host_ns: str, make_ns: Callable[..., str], nic: tuple[str, str]
) -> None:
    name, _ = nic
    pod = make_ns("npc-")
    subprocess.run(["ip", "-n", ns_name(pod), "link", "add", "net1", "type", "veth", "peer", "name", "x1"], check=True)
    rc, answer = run("ADD", conf_for(device=name), node=host_ns, pod=pod)
    assert rc == 1 and answer["code"] == 7 and "net1" in answer["msg"]
    left = link_in(host_ns, name)
    assert left is not None and not left.get("ifalias")


def test_del_finds_a_device_the_kernel_returned_to_the_node(
    host_ns: str, make_ns: Callable[..., str], nic: tuple[str, str]
) -> None:
    name, mac = nic
    pod = make_ns("npc-")
    conf = conf_for(device=name, ipam=STATIC)
    assert run("ADD", conf, node=host_ns, pod=pod)[0] == 0
    # what the kernel does to a physical NIC when the pod namespace goes: back to the node
    # under its pod name (addresses dropped on the way)
    subprocess.run(["ip", "-n", ns_name(pod), "link", "set", "net1", "netns", ns_name(host_ns)], check=True)
    subprocess.run(["ip", "netns", "delete", ns_name(pod)], check=True)

    rc, answer = run("DEL", conf, node=host_ns, pod=pod)

    assert rc == 0, answer
    back = link_in(host_ns, name)
    assert back is not None and back["address"] == mac and not back.get("ifalias")
    assert link_in(host_ns, "net1") is None


def test_del_of_a_virtual_device_destroyed_with_its_namespace_succeeds(
    host_ns: str, make_ns: Callable[..., str], nic: tuple[str, str]
) -> None:
    name, _ = nic
    pod = make_ns("npc-")
    conf = conf_for(device=name)
    assert run("ADD", conf, node=host_ns, pod=pod)[0] == 0
    subprocess.run(["ip", "netns", "delete", ns_name(pod)], check=True)  # the veth dies with it

    for _ in range(2):
        rc, answer = run("DEL", conf, node=host_ns, pod=pod)
        assert rc == 0, answer
    assert link_in(host_ns, name) is None


def test_gc_returns_devices_of_attachments_that_are_no_longer_valid(
    host_ns: str, make_ns: Callable[..., str], nic: tuple[str, str]
) -> None:
    name, _ = nic
    pod = make_ns("npc-")
    conf = conf_for(cniVersion="1.1.0", device=name)
    assert run("ADD", conf, node=host_ns, pod=pod, container="gone")[0] == 0
    subprocess.run(["ip", "-n", ns_name(pod), "link", "set", "net1", "netns", ns_name(host_ns)], check=True)

    valid = {"cni.dev/valid-attachments": [{"containerID": "gone", "ifname": "net1"}]}
    assert run("GC", conf | valid, node=host_ns, pod="")[0] == 0
    assert link_in(host_ns, "net1") is not None  # still valid: kept as it is

    rc, answer = run("GC", conf | {"cni.dev/valid-attachments": []}, node=host_ns, pod="")
    assert rc == 0, answer
    back = link_in(host_ns, name)
    assert back is not None and not back.get("ifalias")


def test_in_process_add_and_del_give_the_same_kernel_state(
    host_ns: str, make_ns: Callable[..., str], nic: tuple[str, str]
) -> None:
    """The built-in path (meta runs host-device in-process), under pytest's warnings-as-errors."""
    import io

    from cni import skel
    from delegates.hostdevice import plugin as hostdevice
    from delegates.netlink import netns

    name, mac = nic
    pod = make_ns("npc-")

    def call(command: str) -> int:
        environ = {"CNI_COMMAND": command, "CNI_CONTAINERID": "inproc", "CNI_NETNS": pod, "CNI_IFNAME": "net1",
                   "CNI_PATH": "/nonexistent"}
        stdin = io.BytesIO(json.dumps(conf_for(device=name, ipam=STATIC)).encode())
        return netns.call(host_ns, lambda: skel.run(hostdevice.PLUGIN, environ=environ, stdin=stdin,
                                                    stdout=io.StringIO()))

    assert call("ADD") == 0
    assert addrs_of(pod, "net1") == ["10.93.0.5/24"]
    assert call("DEL") == 0
    back = link_in(host_ns, name)
    assert back is not None and back["address"] == mac and addrs_of(host_ns, name) == []
