"""The ipvlan delegate under a kernel that has ipvlan (the vm lane only).

Python runs some 20x slower under emulation, so the plugin runs in-process, as netplex
itself runs a built-in delegate (`cni.invoke` with `delegates.registry`), from a worker
thread inside a throwaway namespace that plays the node; threads the plugin starts
inherit that namespace. One test execs `netplex-ipvlan` to show the console script gives
the same answer. The master is a dummy link; what the plugin did is read back from the
kernel with `ip -j`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cni import invoke, skel
from cni.errors import CniError
from delegates import registry
from delegates.netlink import netns
from tests.netns.conftest import ip_json, ns_name

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
MASTER = "d0"


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


@pytest.fixture
def make_ns() -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def make() -> str:
        made.append(netns.create(netns.unique_name("vmi-")))
        return made[-1]

    try:
        yield make
    finally:
        for path in reversed(made):
            netns.remove(ns_name(path))


def ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns_name(ns), *args], check=True, capture_output=True)


@pytest.fixture
def host_ns(make_ns: Callable[[], str]) -> str:
    """The node: a namespace with `lo` and a dummy master `d0`, both up."""
    path = make_ns()
    ip(path, "link", "set", "lo", "up")
    ip(path, "link", "add", MASTER, "type", "dummy")
    ip(path, "link", "set", MASTER, "up")
    return path


def cni(
    command: str,
    conf: dict[str, Any],
    *,
    host_ns: str,
    netns_path: str,
    ifname: str = "eth0",
    container_id: str = "ctr1",
) -> Answer:
    """One command of the built-in delegate `conf["type"]`, in-process, run in `host_ns`."""
    args = skel.CmdArgs(
        command=command, container_id=container_id, netns=netns_path, ifname=ifname, path=(str(VENV_BIN),)
    )

    def call() -> Answer:
        try:
            return Answer(0, invoke.invoke(conf, args, builtins=registry.lookup))
        except CniError as err:
            return Answer(1, err.to_wire(conf["cniVersion"]))

    return netns.call(host_ns, call)


def exec_cni(command: str, conf: dict[str, Any], *, host_ns: str, netns_path: str) -> Answer:
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "ctr1",
        "CNI_NETNS": netns_path,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(VENV_BIN),
    }
    proc = subprocess.run(
        ["ip", "netns", "exec", ns_name(host_ns), str(VENV_BIN / "netplex-ipvlan")],
        input=json.dumps(conf).encode(),
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    out = proc.stdout.decode()
    return Answer(proc.returncode, json.loads(out) if out.strip() else None)


def ipvlan(master: str | None = MASTER, **keys: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "ivnet", "type": "ipvlan", **keys}
    if master is not None:
        conf["master"] = master
    return conf


def host_local(data_dir: Path) -> dict[str, Any]:
    return {
        "type": "host-local",
        "subnet": "10.1.2.0/24",
        "gateway": "10.1.2.1",
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(data_dir),
    }


def with_prev(conf: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    return conf | {"prevResult": {k: v for k, v in result.items() if k != "cniVersion"}}


def link_of(ns: str, name: str) -> dict[str, Any] | None:
    return next((link for link in ip_json("-d", "link", "show", ns=ns) if link["ifname"] == name), None)


def state(ns: str, name: str = "eth0") -> dict[str, Any]:
    link = link_of(ns, name)
    assert link is not None, f"{name} missing"
    addresses = {
        f"{info['local']}/{info['prefixlen']}"
        for entry in ip_json("addr", "show", "dev", name, ns=ns)
        for info in entry.get("addr_info", [])
        if info.get("scope") == "global"
    }
    return {
        "kind": link["linkinfo"]["info_kind"],
        "mode": link["linkinfo"]["info_data"]["mode"],
        "mac": link["address"],
        "up": "UP" in link["flags"],
        "addresses": addresses,
        "routes": {(r["dst"], r.get("gateway")) for r in ip_json("route", "show", "dev", name, ns=ns)},
    }


def reserved(data_dir: Path) -> set[str]:
    store = data_dir / "ivnet"
    if not store.exists():
        return set()
    return {p.name for p in store.iterdir() if p.name != "lock" and not p.name.startswith("last_reserved_ip")}


def nothing_left(ns: str, data_dir: Path | None = None) -> None:
    assert [link["ifname"] for link in ip_json("link", "show", ns=ns)] == ["lo"]
    if data_dir is not None:
        assert reserved(data_dir) == set()


@pytest.mark.parametrize("mode", ["l2", "l3", "l3s"])
def test_add_check_del(mode: str, host_ns: str, make_ns: Callable[[], str], tmp_path: Path) -> None:
    pod = make_ns()
    conf = ipvlan(mode=mode, ipam=host_local(tmp_path))
    run: dict[str, Any] = dict(host_ns=host_ns, netns_path=pod)

    add = cni("ADD", conf, **run)

    assert add.rc == 0, add.doc
    master = link_of(host_ns, MASTER)
    assert master is not None
    master_mac = master["address"]
    assert state(pod) == {
        "kind": "ipvlan",
        "mode": mode,
        "mac": master_mac,
        "up": True,
        "addresses": {"10.1.2.2/24"},
        "routes": {("default", "10.1.2.1"), ("10.1.2.0/24", None)},
    }
    assert add.doc["interfaces"] == [{"name": "eth0", "mac": master_mac, "sandbox": pod}]
    assert add.doc["ips"] == [{"address": "10.1.2.2/24", "gateway": "10.1.2.1", "interface": 0}]
    assert reserved(tmp_path) == {"10.1.2.2"}

    cached = with_prev(conf, add.doc)
    assert cni("CHECK", cached, **run).rc == 0
    other_mode = cni("CHECK", with_prev(ipvlan(mode="l3" if mode == "l2" else "l2"), add.doc), **run)
    assert other_mode.rc == 1 and "mode" in other_mode.msg, other_mode.doc
    ip(pod, "addr", "del", "10.1.2.2/24", "dev", "eth0")
    gone = cni("CHECK", cached, **run)
    assert gone.rc == 1 and "10.1.2.2/24" in gone.msg, gone.doc

    assert cni("DEL", cached, **run) == Answer(0, None)
    assert cni("DEL", cached, **run) == Answer(0, None)
    nothing_left(pod, tmp_path)


def test_two_pods_reach_each_other_in_l2(host_ns: str, make_ns: Callable[[], str], tmp_path: Path) -> None:
    conf = ipvlan(ipam=host_local(tmp_path))
    pod_a, pod_b = make_ns(), make_ns()
    a = cni("ADD", conf, host_ns=host_ns, netns_path=pod_a, container_id="pod-a")
    b = cni("ADD", conf, host_ns=host_ns, netns_path=pod_b, container_id="pod-b")
    assert (a.rc, b.rc) == (0, 0), (a.doc, b.doc)

    ping = subprocess.run(
        ["ip", "netns", "exec", ns_name(pod_a), "ping", "-c", "1", "-W", "5", b.doc["ips"][0]["address"].split("/")[0]],
        capture_output=True,
        text=True,
        check=False,
    )

    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert cni("DEL", conf, host_ns=host_ns, netns_path=pod_a, container_id="pod-a").rc == 0
    assert cni("DEL", conf, host_ns=host_ns, netns_path=pod_b, container_id="pod-b").rc == 0
    assert reserved(tmp_path) == set()


def test_chained_it_takes_master_and_addresses_from_prev_result(host_ns: str, make_ns: Callable[[], str]) -> None:
    pod = make_ns()
    prev = {
        "interfaces": [{"name": MASTER}],
        "ips": [{"address": "10.1.3.2/24", "gateway": "10.1.3.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    conf = ipvlan(None, prevResult=prev)
    run: dict[str, Any] = dict(host_ns=host_ns, netns_path=pod)

    add = cni("ADD", conf, **run)

    assert add.rc == 0, add.doc
    assert [iface["name"] for iface in add.doc["interfaces"]] == ["eth0"]  # only the ipvlan, as the reference
    assert add.doc["ips"] == [{"address": "10.1.3.2/24", "gateway": "10.1.3.1", "interface": 0}]
    found = state(pod)
    assert (found["kind"], found["addresses"]) == ("ipvlan", {"10.1.3.2/24"})
    assert ("default", "10.1.3.1") in found["routes"]
    assert cni("CHECK", with_prev(ipvlan(None), add.doc), **run).rc == 0
    assert cni("DEL", with_prev(ipvlan(None), add.doc), **run).rc == 0
    nothing_left(pod)


def test_a_master_inside_the_container_with_link_in_container(host_ns: str, make_ns: Callable[[], str]) -> None:
    pod = make_ns()
    ip(pod, "link", "add", "cd0", "type", "dummy")
    ip(pod, "link", "set", "cd0", "up")
    conf = ipvlan("cd0", mode="l3", linkInContainer=True)
    run: dict[str, Any] = dict(host_ns=host_ns, netns_path=pod, ifname="net1")

    add = cni("ADD", conf, **run)

    assert add.rc == 0, add.doc
    link = link_of(pod, "net1")
    assert link is not None and link["link"] == "cd0" and link["linkinfo"]["info_data"]["mode"] == "l3"
    assert cni("DEL", conf, **run).rc == 0
    assert link_of(pod, "net1") is None


@pytest.mark.parametrize(
    ("conf", "key"),
    [
        (ipvlan(mode="l4"), "mode"),
        (ipvlan(mtu=9000), "mtu"),
        (ipvlan("nosuch0"), "master"),
        (ipvlan(None, prevResult={"interfaces": [{"name": "a"}, {"name": "b"}]}), "master"),
    ],
    ids=["mode", "mtu", "unknown-master", "ambiguous-chain"],
)
def test_a_bad_config_is_error_7_naming_the_key_and_leaves_nothing(
    conf: dict[str, Any], key: str, host_ns: str, make_ns: Callable[[], str], tmp_path: Path
) -> None:
    pod = make_ns()
    conf = conf | {"ipam": host_local(tmp_path)}

    add = cni("ADD", conf, host_ns=host_ns, netns_path=pod)

    assert (add.rc, add.code) == (1, 7), add.doc
    assert add.msg.startswith(f"{key}:"), add.msg
    nothing_left(pod, tmp_path)


@pytest.mark.parametrize("first", ["ipvlan", "macvlan"])
def test_ipvlan_and_macvlan_on_one_master_is_busy_error_7(first: str, host_ns: str, make_ns: Callable[[], str]) -> None:
    pod_a, pod_b = make_ns(), make_ns()
    second = "macvlan" if first == "ipvlan" else "ipvlan"
    conf_a = ipvlan() | {"type": first, "name": "one"}
    conf_b = ipvlan() | {"type": second, "name": "two"}
    assert cni("ADD", conf_a, host_ns=host_ns, netns_path=pod_a).rc == 0

    add = cni("ADD", conf_b, host_ns=host_ns, netns_path=pod_b)

    assert (add.rc, add.code) == (1, 7)
    assert add.msg.startswith("master:") and "busy" in add.msg, add.msg
    nothing_left(pod_b)
    assert cni("DEL", conf_a, host_ns=host_ns, netns_path=pod_a).rc == 0


def test_the_executable_answers_as_the_in_process_delegate(host_ns: str, make_ns: Callable[[], str]) -> None:
    pod = make_ns()
    ipam = {"type": "static", "addresses": [{"address": "10.1.4.5/24", "gateway": "10.1.4.1"}]}
    conf = ipvlan(mode="l3", ipam=ipam)
    run: dict[str, Any] = dict(host_ns=host_ns, netns_path=pod)

    by_exec = exec_cni("ADD", conf, **run)
    exec_state = state(pod)
    assert cni("DEL", conf, **run).rc == 0
    in_process = cni("ADD", conf, **run)

    assert by_exec == in_process
    assert state(pod) == exec_state
    assert cni("DEL", conf, **run).rc == 0
    nothing_left(pod)
