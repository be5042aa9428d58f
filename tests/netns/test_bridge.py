"""The bridge delegate against the real kernel, run the way a runtime runs it.

Every call executes `netplex-bridge` with CNI_* env and the config on stdin inside a
throwaway namespace that plays the node (`ip netns exec <host ns> ...`), pods are other
throwaway namespaces, and IPAM is the built-in host-local with a temporary data dir.
Outcomes are read back from the kernel (`ip -j`, `bridge -j`, `nft -j`), not from the
plugin's answer; the autouse `host_unchanged` fixture proves the real host is untouched.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.netns.conftest import ip_json, ns_name

BIN = str(Path(sys.executable).with_name("netplex-bridge"))
VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
BRIDGE = "npbr0"
SUBNET = "10.77.0.0/24"


@dataclasses.dataclass(frozen=True)
class Answer:
    rc: int
    doc: Any
    stderr: str

    @property
    def code(self) -> int | None:
        return self.doc.get("code") if self.rc != 0 and isinstance(self.doc, dict) else None

    @property
    def msg(self) -> str:
        return str(self.doc.get("msg", "")) if isinstance(self.doc, dict) else ""


@dataclasses.dataclass(frozen=True)
class Node:
    """A throwaway node: its namespace, an IPAM data dir, and a way to run the plugin there."""

    ns: str
    data_dir: Path

    def conf(self, version: str = "1.0.0", *, subnet: str | None = SUBNET, **keys: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {"cniVersion": version, "name": "bnet", "type": "bridge", "bridge": BRIDGE}
        if subnet is not None:
            doc["ipam"] = {"type": "host-local", "subnet": subnet, "dataDir": str(self.data_dir)}
        return doc | keys

    def run(
        self,
        command: str,
        conf: dict[str, Any],
        *,
        pod: str,
        container_id: str = "pod1",
        ifname: str = "eth0",
        cni_args: str = "",
    ) -> Answer:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": pod,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": cni_args,
            "CNI_PATH": "/nonexistent",
        }
        proc = subprocess.run(
            ["ip", "netns", "exec", ns_name(self.ns), BIN],
            input=json.dumps(conf),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Answer(proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr)

    def ok(self, command: str, conf: dict[str, Any], **kwargs: Any) -> Any:
        answer = self.run(command, conf, **kwargs)
        assert answer.rc == 0, f"{command} failed: {answer.doc} {answer.stderr[-2000:]}"
        return answer.doc

    def check_conf(self, conf: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        prev = {k: v for k, v in result.items() if k != "cniVersion"}
        return conf | {"prevResult": prev}

    def sh(self, *argv: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", ns_name(self.ns), *argv], check=True, capture_output=True, text=True
        ).stdout

    def nft_rules(self) -> list[dict[str, Any]]:
        doc = json.loads(self.sh("nft", "-j", "list", "ruleset"))
        return [item["rule"] for item in doc["nftables"] if "rule" in item]

    def links(self) -> dict[str, dict[str, Any]]:
        return {link["ifname"]: link for link in ip_json("-d", "link", "show", ns=self.ns)}

    def reserved_ips(self) -> list[str]:
        directory = self.data_dir / "bnet"
        return [p.name for p in directory.iterdir() if _is_ip(p.name)] if directory.exists() else []


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@pytest.fixture
def node(host_ns: str, tmp_path: Path) -> Node:
    return Node(ns=host_ns, data_dir=tmp_path / "ipam")


def pod_link(pod: str, ifname: str = "eth0") -> dict[str, Any] | None:
    found = [link for link in ip_json("-d", "link", "show", ns=pod) if link["ifname"] == ifname]
    return found[0] if found else None


def pod_addrs(pod: str, ifname: str = "eth0") -> list[dict[str, Any]]:
    [link] = ip_json("addr", "show", "dev", ifname, ns=pod)
    return [a for a in link["addr_info"] if a.get("scope") == "global"]


def pod_routes(pod: str, family: str = "-4") -> list[dict[str, Any]]:
    return list(ip_json(family, "route", "show", ns=pod))


def assert_nothing_left(node: Node, pod: str, *, ifname: str = "eth0") -> None:
    if os.path.exists(pod):
        assert pod_link(pod, ifname) is None
    assert {name for name, link in node.links().items() if link.get("linkinfo", {}).get("info_kind") == "veth"} == set()
    assert node.reserved_ips() == []
    assert [rule for rule in node.nft_rules() if rule.get("comment", "").startswith("netplex ")] == []


def assert_shape(doc: dict[str, Any], version: str, *, pod: str) -> None:
    assert doc["cniVersion"] == version
    names = [iface["name"] for iface in doc["interfaces"]]
    assert names[0] == BRIDGE and names[1].startswith("veth") and names[2] == "eth0"
    assert doc["interfaces"][2]["sandbox"] == pod
    assert all(len(iface["mac"]) == 17 for iface in doc["interfaces"])
    assert all(("mtu" in iface) == (version == "1.1.0") for iface in doc["interfaces"])
    assert all(("version" in ip) == version.startswith("0.") for ip in doc["ips"])
    assert all(ip["interface"] == 2 for ip in doc["ips"])


# --- the whole life of an attachment ------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del_on_every_version(node: Node, make_ns: Callable[..., str], version: str) -> None:
    pod = make_ns()
    conf = node.conf(version, isDefaultGateway=True, mtu=1400)

    result = node.ok("ADD", conf, pod=pod, cni_args="IgnoreUnknown=1;MAC=02:11:22:33:44:55")

    assert_shape(result, version, pod=pod)
    link = pod_link(pod)
    assert link is not None and link["linkinfo"]["info_kind"] == "veth"
    assert link["address"] == "02:11:22:33:44:55" == result["interfaces"][2]["mac"]
    assert link["mtu"] == 1400 and "UP" in link["flags"]
    [address] = pod_addrs(pod)
    assert f"{address['local']}/{address['prefixlen']}" == result["ips"][0]["address"]
    assert ipaddress.ip_interface(result["ips"][0]["address"]) in ipaddress.ip_network(SUBNET)
    assert {"dst": "default", "gateway": "10.77.0.1"}.items() <= pod_routes(pod)[0].items()
    host_links = node.links()
    veth = host_links[result["interfaces"][1]["name"]]
    assert veth["master"] == BRIDGE and veth["address"] == result["interfaces"][1]["mac"]
    assert host_links[BRIDGE]["address"] == result["interfaces"][0]["mac"]
    if version not in {"0.3.0", "0.3.1"}:
        node.ok("CHECK", node.check_conf(conf, result), pod=pod)

    node.ok("DEL", conf, pod=pod)
    node.ok("DEL", conf, pod=pod)

    assert_nothing_left(node, pod)


def test_two_pods_ping_each_other_and_the_bridge_mac_stays_pinned(node: Node, make_ns: Callable[..., str]) -> None:
    pod_a, pod_b = make_ns(lo_up=True), make_ns(lo_up=True)
    conf = node.conf(isGateway=True)
    result_a = node.ok("ADD", conf, pod=pod_a, container_id="pod-a")
    bridge_mac = node.links()[BRIDGE]["address"]

    result_b = node.ok("ADD", conf, pod=pod_b, container_id="pod-b")
    # The lowest MAC among the ports is what an unpinned bridge would take.
    node.sh("ip", "link", "set", "dev", result_b["interfaces"][1]["name"], "address", "02:00:00:00:00:01")

    assert node.links()[BRIDGE]["address"] == bridge_mac == result_b["interfaces"][0]["mac"]
    ip_b = result_b["ips"][0]["address"].split("/")[0]
    subprocess.run(["ip", "netns", "exec", ns_name(pod_a), "ping", "-c1", "-W1", ip_b], check=True, capture_output=True)
    node.ok("CHECK", node.check_conf(conf, result_a), pod=pod_a, container_id="pod-a")


def test_check_fails_once_an_address_is_removed(node: Node, make_ns: Callable[..., str]) -> None:
    pod = make_ns()
    conf = node.conf()
    result = node.ok("ADD", conf, pod=pod)

    subprocess.run(["ip", "-n", ns_name(pod), "addr", "del", result["ips"][0]["address"], "dev", "eth0"], check=True)
    answer = node.run("CHECK", node.check_conf(conf, result), pod=pod)

    assert answer.rc == 1 and result["ips"][0]["address"] in answer.msg
    node.ok("DEL", conf, pod=pod)


def test_del_after_the_namespace_is_gone_releases_the_address(node: Node, make_ns: Callable[..., str]) -> None:
    pod = make_ns()
    conf = node.conf(ipMasq=True)
    node.ok("ADD", conf, pod=pod)
    subprocess.run(["ip", "netns", "delete", ns_name(pod)], check=True)

    node.ok("DEL", conf, pod=pod)
    node.ok("DEL", conf, pod="")

    assert_nothing_left(node, pod)


# --- options ------------------------------------------------------------------------------


def test_ipmasq_and_macspoofchk_rules_exist_only_between_add_and_del(node: Node, make_ns: Callable[..., str]) -> None:
    pod = make_ns()
    conf = node.conf(ipMasq=True, macspoofchk=True)
    result = node.ok("ADD", conf, pod=pod, container_id="pod-nft")

    rules = [r for r in node.nft_rules() if r.get("comment") == "netplex bnet pod-nft/eth0"]
    by_family = {r["family"]: r for r in rules}
    assert sorted(by_family) == ["bridge", "inet"] and len(rules) == 2
    masq_text = json.dumps(by_family["inet"]["expr"])
    assert result["ips"][0]["address"].split("/")[0] in masq_text and "masquerade" in masq_text
    assert "10.77.0.0" in masq_text and "224.0.0.0" in masq_text
    spoof_text = json.dumps(by_family["bridge"]["expr"])
    assert result["interfaces"][1]["name"] in spoof_text and result["interfaces"][2]["mac"] in spoof_text

    node.ok("DEL", conf, pod=pod, container_id="pod-nft")
    assert_nothing_left(node, pod)


@pytest.mark.parametrize(("key", "default_route"), [("isGateway", False), ("isDefaultGateway", True)])
def test_gateway_goes_on_the_bridge_and_forwarding_is_enabled(
    node: Node, make_ns: Callable[..., str], key: str, default_route: bool
) -> None:
    pod = make_ns()
    conf = node.conf() | {key: True}

    result = node.ok("ADD", conf, pod=pod)

    assert result["ips"][0]["gateway"] == "10.77.0.1"
    bridge_addrs = [
        a["local"] for link in ip_json("addr", "show", "dev", BRIDGE, ns=node.ns) for a in link["addr_info"]
    ]
    assert "10.77.0.1" in bridge_addrs
    assert node.sh("sysctl", "-n", "net.ipv4.ip_forward").strip() == "1"
    defaults = [r for r in pod_routes(pod) if r["dst"] == "default"]
    assert [r.get("gateway") for r in defaults] == (["10.77.0.1"] if default_route else [])
    node.ok("DEL", conf, pod=pod)


def test_a_failed_gateway_add_undoes_everything_and_leaves_forwarding_off(
    node: Node, make_ns: Callable[..., str]
) -> None:
    pod = make_ns()
    node.ok("ADD", node.conf(subnet=None), pod=pod, container_id="first")  # creates the bridge
    node.sh("ip", "addr", "add", "10.99.0.1/24", "dev", BRIDGE)
    conf = node.conf(isGateway=True, macspoofchk=True)

    answer = node.run("ADD", conf, pod=pod, container_id="second", ifname="net1")

    assert answer.code == 7 and "forceAddress" in answer.msg
    assert pod_link(pod, "net1") is None
    assert node.reserved_ips() == []
    assert node.sh("sysctl", "-n", "net.ipv4.ip_forward").strip() == "0"
    veths = [name for name, link in node.links().items() if link.get("linkinfo", {}).get("info_kind") == "veth"]
    assert len(veths) == 1  # the first pod's
    assert [rule for rule in node.nft_rules() if rule.get("comment", "").startswith("netplex ")] == []


def test_force_address_replaces_the_bridge_address(node: Node, make_ns: Callable[..., str]) -> None:
    pod = make_ns()
    node.ok("ADD", node.conf(subnet=None), pod=pod, container_id="first")
    node.sh("ip", "addr", "add", "10.99.0.1/24", "dev", BRIDGE)

    node.ok("ADD", node.conf(isGateway=True, forceAddress=True), pod=pod, container_id="second", ifname="net1")

    bridge_addrs = [
        a["local"] for link in ip_json("addr", "show", "dev", BRIDGE, ns=node.ns) for a in link["addr_info"]
    ]
    assert "10.77.0.1" in bridge_addrs and "10.99.0.1" not in bridge_addrs


def test_hairpin_mode_is_set_on_the_port(node: Node, make_ns: Callable[..., str]) -> None:
    pod = make_ns()
    result = node.ok("ADD", node.conf(hairpinMode=True), pod=pod)

    [port] = json.loads(node.sh("bridge", "-j", "-d", "link", "show", "dev", result["interfaces"][1]["name"]))
    assert port["hairpin"] is True
    assert "PROMISC" not in node.links()[BRIDGE]["flags"]


def test_promisc_mode_is_set_on_the_bridge(node: Node, make_ns: Callable[..., str]) -> None:
    pod = make_ns()
    conf = node.conf(promiscMode=True)
    result = node.ok("ADD", conf, pod=pod)

    assert "PROMISC" in node.links()[BRIDGE]["flags"]
    [port] = json.loads(node.sh("bridge", "-j", "-d", "link", "show", "dev", result["interfaces"][1]["name"]))
    assert port["hairpin"] is False
    node.ok("CHECK", node.check_conf(conf, result), pod=pod)


def test_ipv6_addresses_are_not_tentative_without_enabledad(node: Node, make_ns: Callable[..., str]) -> None:
    pod = make_ns()
    result = node.ok("ADD", node.conf(subnet="fd77::/64", isDefaultGateway=True), pod=pod)

    [address] = [a for a in pod_addrs(pod) if a["family"] == "inet6"]
    assert f"{address['local']}/64" == result["ips"][0]["address"]
    assert not address.get("tentative") and not address.get("dadfailed")
    assert [r.get("gateway") for r in pod_routes(pod, "-6") if r["dst"] == "default"] == ["fd77::1"]


def test_layer_2_only_brings_the_interface_up_without_addresses(node: Node, make_ns: Callable[..., str]) -> None:
    pod = make_ns()
    conf = node.conf(subnet=None, ipam={})
    result = node.ok("ADD", conf, pod=pod)

    assert "ips" not in result
    link = pod_link(pod)
    assert link is not None and "UP" in link["flags"] and pod_addrs(pod) == []
    node.ok("CHECK", node.check_conf(conf, result), pod=pod)


def test_disable_container_interface_keeps_it_down(node: Node, make_ns: Callable[..., str]) -> None:
    pod = make_ns()
    conf = node.conf(subnet=None, disableContainerInterface=True)

    node.ok("ADD", conf, pod=pod)

    link = pod_link(pod)
    assert link is not None and "UP" not in link["flags"]
    node.ok("DEL", conf, pod=pod)
    assert_nothing_left(node, pod)


# --- in-process and exec give the same answer ---------------------------------------------

_DRIVER = """
import json, sys
from cni import invoke, skel
from delegates import registry
conf, env = json.loads(sys.argv[1]), json.loads(sys.argv[2])
args = skel.CmdArgs(command=env["CNI_COMMAND"], container_id=env["CNI_CONTAINERID"], netns=env["CNI_NETNS"],
                    ifname=env["CNI_IFNAME"], args=env.get("CNI_ARGS", ""), path=("/nonexistent",))
print(json.dumps(invoke.invoke(conf, args, builtins=registry.lookup)))
"""


def test_in_process_and_exec_give_identical_results(node: Node, make_ns: Callable[..., str], tmp_path: Path) -> None:
    pod = make_ns()
    conf = node.conf("1.1.0", isDefaultGateway=True, ipMasq=True)
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "same",
        "CNI_NETNS": pod,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "MAC=02:aa:bb:cc:dd:ee",
    }

    by_exec = node.ok("ADD", conf, pod=pod, container_id="same", cni_args=env["CNI_ARGS"])
    node.ok("DEL", conf, pod=pod, container_id="same")
    other_dir = dict(conf["ipam"], dataDir=str(tmp_path / "ipam2"))  # a fresh store hands out the same IP
    in_process_conf = conf | {"ipam": other_dir}
    out = node.sh(sys.executable, "-c", _DRIVER, json.dumps(in_process_conf), json.dumps(env))
    in_process = json.loads(out)

    # The host end's MAC is the kernel's random pick each time; everything else must match.
    for doc in (by_exec, in_process):
        doc["interfaces"][1]["mac"] = "random"
    assert in_process == by_exec
    assert [r["comment"] for r in node.nft_rules() if r.get("comment", "").startswith("netplex")] == [
        "netplex bnet same/eth0"
    ]


# --- bad configs, STATUS, GC --------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "where"),
    [
        ({"mtu": 70000}, "mtu"),
        ({"vlan": 4095}, "vlan"),
        ({"hairpinMode": True, "promiscMode": True}, "promiscMode"),
        ({"vlanTrunk": [{"minID": 10}]}, "vlanTrunk"),
        ({"ipam": {"type": "host-local", "subnet": "10.77.0.0/33"}}, "ipam"),
    ],
)
def test_a_bad_config_is_error_7_naming_the_key_and_leaves_nothing(
    node: Node, make_ns: Callable[..., str], keys: dict[str, Any], where: str
) -> None:
    pod = make_ns()

    answer = node.run("ADD", node.conf(**keys), pod=pod)

    assert answer.code == 7, answer
    assert where in answer.msg.split(":")[0] or answer.msg.startswith(f'ipam "host-local": {where}'), answer.msg
    assert_nothing_left(node, pod)
    if where != "ipam":  # config checks run before the bridge is made
        assert BRIDGE not in node.links()


def test_status_asks_ipam(node: Node) -> None:
    node.ok("STATUS", node.conf("1.1.0"), pod="")


def test_gc_removes_what_invalid_attachments_left(node: Node, make_ns: Callable[..., str]) -> None:
    pod_a, pod_b = make_ns(), make_ns()
    conf = node.conf("1.1.0", ipMasq=True, macspoofchk=True)
    node.ok("ADD", conf, pod=pod_a, container_id="keep")
    node.ok("ADD", conf, pod=pod_b, container_id="gone")
    gc_conf = conf | {"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}

    node.ok("GC", gc_conf, pod="")

    comments = {r["comment"] for r in node.nft_rules() if r.get("comment", "").startswith("netplex")}
    assert comments == {"netplex bnet keep/eth0"}
    assert len(node.reserved_ips()) == 1


def veths(node: Node) -> dict[str, dict[str, Any]]:
    return {name: link for name, link in node.links().items() if link.get("linkinfo", {}).get("info_kind") == "veth"}


def test_gc_deletes_only_this_networks_leaked_host_veths(node: Node, make_ns: Callable[..., str]) -> None:
    pod_keep, pod_leak, pod_foreign = make_ns(), make_ns(), make_ns()
    conf = node.conf("1.1.0")
    other = node.conf("1.1.0", subnet="10.78.0.0/24") | {"name": "bnet2"}  # another NAD, same bridge
    kept = node.ok("ADD", conf, pod=pod_keep, container_id="keep")
    leaked = node.ok("ADD", conf, pod=pod_leak, container_id="leak")
    shared = node.ok("ADD", other, pod=pod_leak, container_id="leak", ifname="net1")
    # Ports someone else made on the same bridge: one without an alias, one with another's.
    for name, alias in (("fv-plain", None), ("fv-alias", "uplink to rack 3")):
        node.sh("ip", "link", "add", name, "type", "veth", "peer", "name", name + "p", "netns", ns_name(pod_foreign))
        node.sh("ip", "link", "set", name, "master", BRIDGE, "up")
        if alias:
            node.sh("ip", "link", "set", name, "alias", alias)
    host_keep, host_leak, host_shared = (doc["interfaces"][1]["name"] for doc in (kept, leaked, shared))
    before = veths(node)
    assert before[host_keep]["ifalias"] == "netplex:bnet:keep/eth0"
    assert before[host_leak]["ifalias"] == "netplex:bnet:leak/eth0"
    assert before[host_shared]["ifalias"] == "netplex:bnet2:leak/net1"
    assert len(node.reserved_ips()) == 2
    gc_conf = conf | {"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}

    node.ok("GC", gc_conf, pod="")

    assert set(veths(node)) == {host_keep, host_shared, "fv-plain", "fv-alias"}
    assert pod_link(pod_leak) is None and pod_link(pod_leak, "net1") is not None  # the namespace lives on
    assert pod_link(pod_keep) is not None
    assert node.reserved_ips() == [kept["ips"][0]["address"].split("/")[0]]
    assert (node.data_dir / "bnet2" / shared["ips"][0]["address"].split("/")[0]).exists()
    node.ok("CHECK", node.check_conf(conf, kept), pod=pod_keep, container_id="keep")
    node.ok("GC", gc_conf, pod="")  # nothing left to collect: still a success
    node.ok("DEL", conf, pod=pod_leak, container_id="leak")  # the runtime's late DEL is fine too


def test_gc_with_the_bridge_gone_succeeds(node: Node) -> None:
    gc_conf = node.conf("1.1.0") | {"cni.dev/valid-attachments": []}

    node.ok("GC", gc_conf, pod="")

    assert BRIDGE not in node.links()


# --- portIsolation ------------------------------------------------------------------------


def port_of(node: Node, name: str) -> dict[str, Any]:
    [port] = json.loads(node.sh("bridge", "-j", "-d", "link", "show", "dev", name))
    return dict(port)


def test_port_isolation_sets_the_ports_flag_and_check_verifies_it(node: Node, make_ns: Callable[..., str]) -> None:
    pod = make_ns()
    conf = node.conf(portIsolation=True)

    result = node.ok("ADD", conf, pod=pod)

    host = result["interfaces"][1]["name"]
    assert port_of(node, host)["isolated"] is True
    node.ok("CHECK", node.check_conf(conf, result), pod=pod)
    plain = node.conf()
    answer = node.run("CHECK", node.check_conf(plain, result), pod=pod)
    assert answer.code == 999 and "portIsolation" in answer.msg and host in answer.msg
    node.sh("bridge", "link", "set", "dev", host, "isolated", "off")
    answer = node.run("CHECK", node.check_conf(conf, result), pod=pod)
    assert answer.code == 999 and "isolation is off" in answer.msg
    node.ok("DEL", conf, pod=pod)
    assert_nothing_left(node, pod)


def ping(src: str, address: str) -> bool:
    argv = ["ip", "netns", "exec", ns_name(src), "ping", "-c1", "-W1", address]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_isolated_ports_cannot_reach_each_other_but_reach_an_open_port(node: Node, make_ns: Callable[..., str]) -> None:
    iso_a, iso_b, open_c = make_ns(lo_up=True), make_ns(lo_up=True), make_ns(lo_up=True)
    isolated, plain = node.conf(portIsolation=True), node.conf()
    address, port = {}, {}
    for pod, conf, cid in ((iso_a, isolated, "iso-a"), (iso_b, isolated, "iso-b"), (open_c, plain, "open-c")):
        result = node.ok("ADD", conf, pod=pod, container_id=cid)
        address[cid], port[cid] = result["ips"][0]["address"].split("/")[0], result["interfaces"][1]["name"]

    assert ping(iso_a, address["open-c"]) and ping(open_c, address["iso-b"]) and ping(iso_b, address["open-c"])
    assert not ping(iso_a, address["iso-b"])
    assert not ping(iso_b, address["iso-a"])
    # control: the same two pods reach each other once one port is no longer isolated
    node.sh("bridge", "link", "set", "dev", port["iso-b"], "isolated", "off")
    assert ping(iso_a, address["iso-b"])
