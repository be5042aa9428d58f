"""The macvlan delegate against the real kernel, run as a runtime runs it.

`netplex-macvlan` is exec'd with CNI_* env and stdin inside a throwaway namespace playing
the node (`host_ns`), on a veth standing in for the node's NIC (`uplink`). What it did is
read back from the kernel with `ip -j` (and from host-local's files), not from its own
answer. The in-process path (`delegates.registry` through `cni.invoke`) is driven by a
small Python driver in the same namespace and must give the same answers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cni import version
from delegates.netlink import links, netns
from tests.netns.conftest import Uplink, ip_json, ns_name

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
EXECUTABLE = str(VENV_BIN / "netplex-macvlan")
VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")
SUBNET = "10.77.0"

DRIVER = """
import json, sys
from cni import invoke, skel
from cni.errors import CniError
from delegates import registry

req = json.load(sys.stdin)
args = skel.CmdArgs(
    command=req["command"], container_id=req["container_id"], netns=req["netns"],
    ifname=req["ifname"], args=req["cni_args"], path=tuple(req["path"]),
)
try:
    print(json.dumps({"rc": 0, "doc": invoke.invoke(req["conf"], args, builtins=registry.lookup)}))
except CniError as err:
    print(json.dumps({"rc": 1, "doc": err.to_wire(req["conf"]["cniVersion"])}))
"""


@dataclasses.dataclass(frozen=True)
class Answer:
    rc: int
    doc: Any

    @property
    def code(self) -> int | None:
        return self.doc.get("code") if self.rc and isinstance(self.doc, dict) else None

    @property
    def msg(self) -> str:
        return str(self.doc.get("msg", "")) if isinstance(self.doc, dict) else ""


def cni(
    command: str,
    conf: dict[str, Any],
    *,
    host_ns: str,
    netns_path: str,
    ifname: str = "eth0",
    container_id: str = "ctr1",
    cni_args: str = "",
    in_process: bool = False,
) -> Answer:
    """Run one CNI command in `host_ns`: the executable, or the in-process driver."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns_path,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": cni_args,
        "CNI_PATH": str(VENV_BIN),
    }
    if in_process:
        request = {
            "command": command,
            "container_id": container_id,
            "netns": netns_path,
            "ifname": ifname,
            "cni_args": cni_args,
            "path": [str(VENV_BIN)],
            "conf": conf,
        }
        argv = [str(VENV_BIN / "python"), "-c", DRIVER]
        stdin = json.dumps(request).encode()
    else:
        argv, stdin = [EXECUTABLE], json.dumps(conf).encode()
    proc = subprocess.run(
        ["ip", "netns", "exec", ns_name(host_ns), *argv],
        input=stdin,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    out = proc.stdout.decode()
    if in_process:
        assert proc.returncode == 0, proc.stderr.decode()
        wrapped = json.loads(out)
        return Answer(wrapped["rc"], wrapped["doc"])
    return Answer(proc.returncode, json.loads(out) if out.strip() else None)


def macvlan(master: str | None, *, cni_version: str = "1.0.0", **keys: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {"cniVersion": cni_version, "name": "mvnet", "type": "macvlan", **keys}
    if master is not None:
        conf["master"] = master
    return conf


def host_local(data_dir: Path, *, subnet: str = SUBNET, **keys: Any) -> dict[str, Any]:
    return {
        "type": "host-local",
        "subnet": f"{subnet}.0/24",
        "gateway": f"{subnet}.1",
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(data_dir),
        **keys,
    }


def with_prev(conf: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The config as a runtime sends it for CHECK and DEL: the ADD result as prevResult."""
    return conf | {"prevResult": {k: v for k, v in result.items() if k != "cniVersion"}}


# --- the kernel's view -----------------------------------------------------------------


def link_of(ns: str, name: str) -> dict[str, Any] | None:
    return next((link for link in ip_json("-d", "link", "show", ns=ns) if link["ifname"] == name), None)


def ifindex(ns: str, name: str) -> int:
    link = link_of(ns, name)
    assert link is not None, f"{name} missing in {ns}"
    return int(link["ifindex"])


def addresses(ns: str, name: str) -> set[str]:
    return {
        f"{info['local']}/{info['prefixlen']}"
        for link in ip_json("addr", "show", "dev", name, ns=ns)
        for info in link.get("addr_info", [])
        if info.get("scope") == "global"
    }


def routes_via(ns: str, name: str) -> set[tuple[str, str | None]]:
    return {(route["dst"], route.get("gateway")) for route in ip_json("route", "show", "dev", name, ns=ns)}


def reserved(data_dir: Path, network: str = "mvnet") -> set[str]:
    """The addresses host-local holds (its lock and last-reserved files aside)."""
    store = data_dir / network
    if not store.exists():
        return set()
    return {p.name for p in store.iterdir() if p.name != "lock" and not p.name.startswith("last_reserved_ip")}


def snapshot(ns: str, name: str) -> dict[str, Any]:
    """What a test compares between runs: the link's kind, mode, MAC, MTU, state, addresses, routes."""
    link = link_of(ns, name)
    assert link is not None
    info = link["linkinfo"]
    return {
        "kind": info["info_kind"],
        "mode": info["info_data"]["mode"],
        "mac": link["address"],
        "mtu": link["mtu"],
        "up": "UP" in link["flags"],
        "addresses": addresses(ns, name),
        "routes": routes_via(ns, name),
    }


def nothing_left(ns: str, data_dir: Path | None = None, ifname: str = "eth0") -> None:
    assert link_of(ns, ifname) is None
    assert [link["ifname"] for link in ip_json("link", "show", ns=ns)] == ["lo"]
    if data_dir is not None:
        assert reserved(data_dir) == set()


# --- ADD / CHECK / DEL -----------------------------------------------------------------


@pytest.mark.parametrize("cni_version", VERSIONS)
def test_add_check_del_with_host_local(cni_version: str, uplink: Uplink, container_ns: str, tmp_path: Path) -> None:
    conf = macvlan(uplink.name, cni_version=cni_version, mtu=1400, ipam=host_local(tmp_path))
    run: dict[str, Any] = dict(host_ns=uplink.host_ns, netns_path=container_ns)

    add = cni("ADD", conf, **run)

    assert add.rc == 0, add.doc
    link = link_of(container_ns, "eth0")
    assert link is not None
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert link["linkinfo"]["info_data"]["mode"] == "bridge"
    assert link["mtu"] == 1400
    assert "UP" in link["flags"]
    assert link["link_index"] == ifindex(uplink.host_ns, uplink.name)  # on the uplink, in the node's namespace
    assert addresses(container_ns, "eth0") == {f"{SUBNET}.2/24"}
    assert (("default", f"{SUBNET}.1")) in routes_via(container_ns, "eth0")
    assert reserved(tmp_path) == {f"{SUBNET}.2"}
    assert add.doc["cniVersion"] == cni_version
    assert add.doc["interfaces"] == [{"name": "eth0", "mac": link["address"], "sandbox": container_ns}]
    ip = {"address": f"{SUBNET}.2/24", "gateway": f"{SUBNET}.1", "interface": 0}
    if not version.at_least(cni_version, "1.0.0"):
        ip = {"version": "4", **ip}
    assert add.doc["ips"] == [ip]
    assert add.doc["routes"] == [{"dst": "0.0.0.0/0"}]

    cached = with_prev(conf, add.doc)
    if version.at_least(cni_version, "0.4.0"):
        assert cni("CHECK", cached, **run).rc == 0
        subprocess.run(["ip", "-n", ns_name(container_ns), "addr", "del", f"{SUBNET}.2/24", "dev", "eth0"], check=True)
        broken = cni("CHECK", cached, **run)
        assert broken.rc == 1
        assert f"{SUBNET}.2/24" in broken.msg

    assert cni("DEL", cached, **run) == Answer(0, None)
    assert cni("DEL", cached, **run) == Answer(0, None)
    nothing_left(container_ns, tmp_path)


def test_add_with_static_ipam(uplink: Uplink, container_ns: str) -> None:
    ipam = {
        "type": "static",
        "addresses": [{"address": "10.78.0.5/24", "gateway": "10.78.0.1"}],
        "routes": [{"dst": "192.168.0.0/16"}],
    }
    conf = macvlan(uplink.name, mode="private", ipam=ipam)
    run: dict[str, Any] = dict(host_ns=uplink.host_ns, netns_path=container_ns)

    add = cni("ADD", conf, **run)

    assert add.rc == 0, add.doc
    assert snapshot(container_ns, "eth0") | {"mac": None} == {
        "kind": "macvlan",
        "mode": "private",
        "mac": None,
        "mtu": 1500,
        "up": True,
        "addresses": {"10.78.0.5/24"},
        "routes": {("10.78.0.0/24", None), ("192.168.0.0/16", "10.78.0.1")},
    }
    assert cni("CHECK", with_prev(conf, add.doc), **run).rc == 0
    assert cni("DEL", with_prev(conf, add.doc), **run).rc == 0
    nothing_left(container_ns)


def test_dual_stack_static_addresses_land_on_the_link(uplink: Uplink, container_ns: str) -> None:
    ipam = {"type": "static", "addresses": [{"address": "10.81.0.5/24"}, {"address": "fd00:81::5/64"}]}
    conf = macvlan(uplink.name, ipam=ipam)
    run: dict[str, Any] = dict(host_ns=uplink.host_ns, netns_path=container_ns)

    add = cni("ADD", conf, **run)

    assert add.rc == 0, add.doc
    assert addresses(container_ns, "eth0") == {"10.81.0.5/24", "fd00:81::5/64"}
    assert [ip["interface"] for ip in add.doc["ips"]] == [0, 0]
    assert cni("CHECK", with_prev(conf, add.doc), **run).rc == 0
    assert cni("DEL", conf, **run).rc == 0
    nothing_left(container_ns)


def test_add_onto_a_taken_ifname_fails_and_keeps_the_existing_link(
    uplink: Uplink, container_ns: str, tmp_path: Path
) -> None:
    first = cni("ADD", macvlan(uplink.name), host_ns=uplink.host_ns, netns_path=container_ns)
    assert first.rc == 0, first.doc

    second = cni(
        "ADD",
        macvlan(uplink.name, ipam=host_local(tmp_path)),
        host_ns=uplink.host_ns,
        netns_path=container_ns,
        container_id="ctr2",
    )

    assert second.rc == 1
    assert "eth0" in second.msg and "exists" in second.msg, second.msg
    assert snapshot(container_ns, "eth0")["mac"] == first.doc["interfaces"][0]["mac"]
    assert reserved(tmp_path) == set()


@pytest.mark.parametrize("ipam", [None, {}], ids=["absent", "empty"])
def test_without_ipam_the_link_is_up_with_no_address(
    ipam: dict[str, Any] | None, uplink: Uplink, container_ns: str
) -> None:
    conf = macvlan(uplink.name, mode="vepa")
    if ipam is not None:
        conf["ipam"] = ipam
    run: dict[str, Any] = dict(host_ns=uplink.host_ns, netns_path=container_ns)

    add = cni("ADD", conf, **run)

    assert add.rc == 0, add.doc
    assert "ips" not in add.doc
    state = snapshot(container_ns, "eth0")
    assert (state["kind"], state["mode"], state["up"], state["addresses"]) == ("macvlan", "vepa", True, set())
    assert cni("CHECK", with_prev(conf, add.doc), **run).rc == 0
    assert cni("DEL", conf, **run).rc == 0
    nothing_left(container_ns)


def test_two_pods_on_one_master_reach_each_other_in_bridge_mode(
    uplink: Uplink, make_ns: Callable[..., str], tmp_path: Path
) -> None:
    conf = macvlan(uplink.name, ipam=host_local(tmp_path))
    pod_a, pod_b = make_ns("npc-"), make_ns("npc-")
    a = cni("ADD", conf, host_ns=uplink.host_ns, netns_path=pod_a, container_id="pod-a")
    b = cni("ADD", conf, host_ns=uplink.host_ns, netns_path=pod_b, container_id="pod-b")
    assert (a.rc, b.rc) == (0, 0), (a.doc, b.doc)
    b_ip = b.doc["ips"][0]["address"].split("/")[0]

    ping = subprocess.run(
        ["ip", "netns", "exec", ns_name(pod_a), "ping", "-c", "1", "-W", "2", b_ip],
        capture_output=True,
        text=True,
        check=False,
    )

    assert ping.returncode == 0, ping.stdout + ping.stderr
    for pod, container_id in ((pod_a, "pod-a"), (pod_b, "pod-b")):
        assert cni("DEL", conf, host_ns=uplink.host_ns, netns_path=pod, container_id=container_id).rc == 0
        nothing_left(pod)
    assert reserved(tmp_path) == set()


def test_add_announces_the_address_with_a_gratuitous_arp(uplink: Uplink, container_ns: str, tmp_path: Path) -> None:
    # The far end learns the pod's MAC from the announcement alone (arp_accept: take
    # unsolicited ARP), without ever talking to the pod.
    wire = ns_name(uplink.wire_ns)
    subprocess.run(["ip", "-n", wire, "addr", "add", f"{SUBNET}.254/24", "dev", uplink.wire_name], check=True)
    subprocess.run(
        ["ip", "netns", "exec", wire, "sysctl", "-qw", f"net.ipv4.conf.{uplink.wire_name}.arp_accept=1"], check=True
    )
    conf = macvlan(uplink.name, ipam=host_local(tmp_path))

    add = cni("ADD", conf, host_ns=uplink.host_ns, netns_path=container_ns)

    assert add.rc == 0, add.doc
    neighbours = {(n["dst"], n.get("lladdr")) for n in ip_json("neigh", "show", "dev", uplink.wire_name, ns=wire)}
    assert (f"{SUBNET}.2", add.doc["interfaces"][0]["mac"]) in neighbours


def test_a_failed_add_leaves_no_link_and_no_reserved_ip(uplink: Uplink, container_ns: str, tmp_path: Path) -> None:
    # the kernel refuses a gateway on no connected subnet, after the link and the IP exist
    ipam = host_local(tmp_path, routes=[{"dst": "192.168.0.0/16", "gw": "172.31.255.1"}])
    conf = macvlan(uplink.name, ipam=ipam)

    add = cni("ADD", conf, host_ns=uplink.host_ns, netns_path=container_ns)

    assert add.rc == 1
    assert "192.168.0.0/16" in add.msg or "172.31.255.1" in add.msg, add.msg
    nothing_left(container_ns, tmp_path)


def test_del_after_the_netns_is_gone_releases_the_address(
    uplink: Uplink, make_ns: Callable[..., str], tmp_path: Path
) -> None:
    conf = macvlan(uplink.name, ipam=host_local(tmp_path))
    pod = make_ns("npc-")
    add = cni("ADD", conf, host_ns=uplink.host_ns, netns_path=pod)
    assert add.rc == 0, add.doc
    netns.remove(ns_name(pod))

    assert cni("DEL", with_prev(conf, add.doc), host_ns=uplink.host_ns, netns_path=pod) == Answer(0, None)
    assert reserved(tmp_path) == set()
    assert cni("DEL", conf, host_ns=uplink.host_ns, netns_path="") == Answer(0, None)  # containerd's second DEL


def test_status_and_gc_are_forwarded_to_ipam(uplink: Uplink, container_ns: str, tmp_path: Path) -> None:
    conf = macvlan(uplink.name, cni_version="1.1.0", ipam=host_local(tmp_path))
    run: dict[str, Any] = dict(host_ns=uplink.host_ns, netns_path=container_ns)
    assert cni("STATUS", conf, **run).rc == 0
    assert cni("ADD", conf, **run).rc == 0

    keep = cni("GC", conf | {"cni.dev/valid-attachments": [{"containerID": "ctr1", "ifname": "eth0"}]}, **run)
    assert keep.rc == 0, keep.doc
    assert reserved(tmp_path) == {f"{SUBNET}.2"}

    drop = cni("GC", conf | {"cni.dev/valid-attachments": []}, **run)
    assert drop.rc == 0, drop.doc
    assert reserved(tmp_path) == set()


# --- the master ------------------------------------------------------------------------


def test_without_master_the_host_default_route_link_is_used(uplink: Uplink, container_ns: str) -> None:
    host = ns_name(uplink.host_ns)
    subprocess.run(["ip", "-n", host, "addr", "add", "10.79.0.10/24", "dev", uplink.name], check=True)
    subprocess.run(["ip", "-n", host, "route", "add", "default", "via", "10.79.0.1"], check=True)
    conf = macvlan(None)

    add = cni("ADD", conf, host_ns=uplink.host_ns, netns_path=container_ns)

    assert add.rc == 0, add.doc
    link = link_of(container_ns, "eth0")
    assert link is not None and link["link_index"] == ifindex(uplink.host_ns, uplink.name)
    assert cni("CHECK", with_prev(conf, add.doc), host_ns=uplink.host_ns, netns_path=container_ns).rc == 0


def test_without_master_or_default_route_is_error_7_naming_master(uplink: Uplink, container_ns: str) -> None:
    add = cni("ADD", macvlan(None), host_ns=uplink.host_ns, netns_path=container_ns)

    assert (add.rc, add.code) == (1, 7)
    assert add.msg.startswith("master:"), add.msg
    nothing_left(container_ns)


def test_a_master_inside_the_container_with_link_in_container(
    make_ns: Callable[..., str], host_ns: str, container_ns: str
) -> None:
    wire = make_ns("npw-")
    links.create_veth(host_name="cup0", peer_name="cwire0", peer_netns=wire, host_netns=container_ns, peer_up=True)
    conf = macvlan("cup0", linkInContainer=True)
    run: dict[str, Any] = dict(host_ns=host_ns, netns_path=container_ns, ifname="net1")

    add = cni("ADD", conf, **run)

    assert add.rc == 0, add.doc
    link = link_of(container_ns, "net1")
    assert link is not None
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert link["link"] == "cup0"  # same namespace: iproute2 names the master
    assert cni("CHECK", with_prev(conf, add.doc), **run).rc == 0
    assert cni("DEL", conf, **run).rc == 0
    assert link_of(container_ns, "net1") is None
    assert link_of(container_ns, "cup0") is not None


@pytest.mark.parametrize("way", ["runtimeConfig", "args.cni", "CNI_ARGS", "config"])
def test_a_requested_mac_is_the_links_mac(way: str, uplink: Uplink, container_ns: str) -> None:
    mac = "0a:58:0a:4d:00:0" + str(["runtimeConfig", "args.cni", "CNI_ARGS", "config"].index(way) + 1)
    conf = macvlan(uplink.name)
    cni_args = ""
    if way == "runtimeConfig":
        conf |= {"capabilities": {"mac": True}, "runtimeConfig": {"mac": mac}}
    elif way == "args.cni":
        conf |= {"args": {"cni": {"mac": mac}}}
    elif way == "CNI_ARGS":
        cni_args = f"IgnoreUnknown=1;K8S_POD_NAME=p;MAC={mac}"
    else:
        conf |= {"mac": mac.upper()}

    add = cni("ADD", conf, host_ns=uplink.host_ns, netns_path=container_ns, cni_args=cni_args)

    assert add.rc == 0, add.doc
    assert snapshot(container_ns, "eth0")["mac"] == mac
    assert add.doc["interfaces"][0]["mac"] == mac


# --- bad configs: error 7 naming the key, nothing left ---------------------------------


def test_an_mtu_above_the_masters_is_error_7_and_leaves_nothing(
    uplink: Uplink, container_ns: str, tmp_path: Path
) -> None:
    add = cni(
        "ADD",
        macvlan(uplink.name, mtu=9000, ipam=host_local(tmp_path)),
        host_ns=uplink.host_ns,
        netns_path=container_ns,
    )

    assert (add.rc, add.code) == (1, 7)
    assert add.msg.startswith("mtu:") and "1500" in add.msg, add.msg
    nothing_left(container_ns, tmp_path)


def test_an_unknown_master_is_error_7_and_leaves_nothing(uplink: Uplink, container_ns: str, tmp_path: Path) -> None:
    add = cni("ADD", macvlan("nosuch0", ipam=host_local(tmp_path)), host_ns=uplink.host_ns, netns_path=container_ns)

    assert (add.rc, add.code) == (1, 7)
    assert add.msg == 'master: link "nosuch0" not found'
    nothing_left(container_ns, tmp_path)


@pytest.mark.parametrize(("key", "value"), [("mode", "nope"), ("mac", "zz:00:00:00:00:01"), ("mtu", -1)])
def test_a_bad_key_is_error_7_naming_it_and_leaves_nothing(
    key: str, value: Any, uplink: Uplink, container_ns: str, tmp_path: Path
) -> None:
    conf = macvlan(uplink.name, ipam=host_local(tmp_path), **{key: value})

    add = cni("ADD", conf, host_ns=uplink.host_ns, netns_path=container_ns)

    assert (add.rc, add.code) == (1, 7)
    assert add.msg.startswith(f"{key}:"), add.msg
    nothing_left(container_ns, tmp_path)
    assert cni("DEL", conf, host_ns=uplink.host_ns, netns_path=container_ns) == Answer(0, None)


def test_a_master_that_is_a_bridge_port_is_busy_error_7(uplink: Uplink, container_ns: str, tmp_path: Path) -> None:
    host = ns_name(uplink.host_ns)
    bridge = f"br{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "-n", host, "link", "add", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "-n", host, "link", "set", uplink.name, "master", bridge], check=True)

    add = cni("ADD", macvlan(uplink.name, ipam=host_local(tmp_path)), host_ns=uplink.host_ns, netns_path=container_ns)

    assert (add.rc, add.code) == (1, 7)
    assert add.msg.startswith("master:") and "busy" in add.msg, add.msg
    nothing_left(container_ns, tmp_path)


# --- in-process equals exec ------------------------------------------------------------


def test_in_process_gives_the_same_answers_and_kernel_state_as_exec(uplink: Uplink, container_ns: str) -> None:
    ipam = {
        "type": "static",
        "addresses": [{"address": "10.80.0.5/24", "gateway": "10.80.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    conf = macvlan(
        uplink.name, mtu=1450, ipam=ipam, capabilities={"mac": True}, runtimeConfig={"mac": "0a:58:00:00:00:aa"}
    )
    run: dict[str, Any] = dict(host_ns=uplink.host_ns, netns_path=container_ns)
    seen: dict[bool, dict[str, Any]] = {}
    for in_process in (False, True):
        add = cni("ADD", conf, in_process=in_process, **run)
        assert add.rc == 0, add.doc
        state = snapshot(container_ns, "eth0")
        check = cni("CHECK", with_prev(conf, add.doc), in_process=in_process, **run)
        delete = cni("DEL", with_prev(conf, add.doc), in_process=in_process, **run)
        again = cni("DEL", with_prev(conf, add.doc), in_process=in_process, **run)
        nothing_left(container_ns)
        errors = [
            cni("ADD", macvlan(uplink.name, mode="nope"), in_process=in_process, **run),
            cni("ADD", macvlan("nosuch0"), in_process=in_process, **run),
            cni("ADD", macvlan(uplink.name, mtu=9000), in_process=in_process, **run),
        ]
        seen[in_process] = {"add": add, "state": state, "check": check, "del": (delete, again), "errors": errors}

    assert seen[True] == seen[False]
    assert [err.code for err in seen[True]["errors"]] == [7, 7, 7]
