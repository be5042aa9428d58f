"""macvlan and ipvlan without the kernel: config parsing and validation (error 7 naming the
key), the chained-master rule, the MTU rule, the result shaping, the gratuitous ARP frame,
and the verbs that must answer before touching any link."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from cni import decode
from cni.config import load_conf
from cni.errors import CniError, Code
from cni.result import DNS, Interface, Result
from delegates import registry
from delegates.ipvlan import plugin as ipvlan
from delegates.macvlan import garp, master, sublink
from delegates.macvlan import plugin as macvlan
from tests.unit.delegates.conftest import environ, run_in_process


def conf(plugin_type: str, **keys: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "net1", "type": plugin_type, **keys}


def load_error(model: type[Any], doc: dict[str, Any]) -> CniError:
    with pytest.raises(CniError) as caught:
        load_conf(model, json.dumps(doc))
    return caught.value


# --- macvlan config --------------------------------------------------------------------


def test_macvlan_defaults_are_the_reference_ones() -> None:
    parsed = load_conf(macvlan.MacvlanConf, json.dumps(conf("macvlan")))

    assert (parsed.master, parsed.mode, parsed.mtu, parsed.mac, parsed.link_in_container) == (
        "",
        "bridge",
        0,
        "",
        False,
    )


@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru"])
def test_macvlan_accepts_every_reference_mode(mode: str) -> None:
    assert load_conf(macvlan.MacvlanConf, json.dumps(conf("macvlan", mode=mode))).mode == mode


def test_an_empty_macvlan_mode_means_bridge() -> None:
    assert load_conf(macvlan.MacvlanConf, json.dumps(conf("macvlan", mode=""))).mode == "bridge"


def test_macvlan_reads_its_wire_spellings() -> None:
    doc = conf("macvlan", master="eth1", mode="vepa", mtu=1400, mac="0A:00:00:00:00:01", linkInContainer=True)

    parsed = load_conf(macvlan.MacvlanConf, json.dumps(doc))

    assert (parsed.master, parsed.mode, parsed.mtu, parsed.mac, parsed.link_in_container) == (
        "eth1",
        "vepa",
        1400,
        "0a:00:00:00:00:01",
        True,
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("mode", "source"),  # the kernel has it, the reference plugin does not
        ("mode", "l2"),
        ("mtu", -1),
        ("mtu", "big"),
        ("mac", "not-a-mac"),
        ("mac", "01:00:5e:00:00:01"),  # multicast
        ("master", "a-name-longer-than-15"),
        ("master", "../eth0"),
        ("linkInContainer", "maybe"),
    ],
)
def test_a_bad_macvlan_key_is_error_7_naming_it(key: str, value: Any) -> None:
    err = load_error(macvlan.MacvlanConf, conf("macvlan", **{key: value}))

    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert err.msg.startswith(f"{key}:"), err.msg


def test_unknown_macvlan_keys_are_accepted_and_left_in_the_document() -> None:
    doc = conf("macvlan", bcqueuelen=100)

    parsed = load_conf(macvlan.MacvlanConf, json.dumps(doc))

    # The model does not keep them: the IPAM plugin gets the document itself (test_ipam_glue).
    assert parsed == load_conf(macvlan.MacvlanConf, json.dumps(conf("macvlan")))
    assert decode.unknown_keys(doc, macvlan.MacvlanConf) == ["bcqueuelen"]


# --- ipvlan config ---------------------------------------------------------------------


@pytest.mark.parametrize(("given", "mode"), [("", "l2"), ("l2", "l2"), ("l3", "l3"), ("l3s", "l3s")])
def test_ipvlan_modes(given: str, mode: str) -> None:
    assert load_conf(ipvlan.IpvlanConf, json.dumps(conf("ipvlan", mode=given))).mode == mode


def test_ipvlan_defaults_are_the_reference_ones() -> None:
    parsed = load_conf(ipvlan.IpvlanConf, json.dumps(conf("ipvlan")))

    assert (parsed.master, parsed.mode, parsed.mtu, parsed.link_in_container) == ("", "l2", 0, False)


@pytest.mark.parametrize(
    ("key", "value"), [("mode", "bridge"), ("mode", "L2"), ("mtu", -5), ("master", "x" * 16), ("master", "a b")]
)
def test_a_bad_ipvlan_key_is_error_7_naming_it(key: str, value: Any) -> None:
    err = load_error(ipvlan.IpvlanConf, conf("ipvlan", **{key: value}))

    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert err.msg.startswith(f"{key}:"), err.msg


def _ipvlan(**keys: Any) -> ipvlan.IpvlanConf:
    return load_conf(ipvlan.IpvlanConf, json.dumps(conf("ipvlan", **keys)))


def test_an_ipvlan_master_in_the_config_wins_over_prev_result() -> None:
    prev = Result(interfaces=[Interface(name="eth9")])

    assert ipvlan.master_name(_ipvlan(master="eth1"), prev) == "eth1"


def test_an_unchained_ipvlan_without_master_takes_the_default_route() -> None:
    assert ipvlan.master_name(_ipvlan(), None) == ""


def test_a_chained_ipvlan_takes_the_single_interface_of_prev_result() -> None:
    prev = Result(interfaces=[Interface(name="host0")])

    assert ipvlan.master_name(_ipvlan(), prev) == "host0"


@pytest.mark.parametrize(
    "interfaces",
    [[], [Interface(name="")], [Interface(name="a"), Interface(name="b")]],
    ids=["none", "unnamed", "two"],
)
def test_a_chained_ipvlan_without_one_named_interface_is_error_7_naming_master(interfaces: list[Interface]) -> None:
    with pytest.raises(CniError) as caught:
        ipvlan.master_name(_ipvlan(), Result(interfaces=interfaces))

    assert caught.value.code == Code.INVALID_NETWORK_CONFIG
    assert caught.value.msg.startswith("master:")


def test_prev_result_is_parsed_in_the_config_version() -> None:
    doc = conf(
        "ipvlan",
        cniVersion="0.4.0",
        prevResult={"interfaces": [{"name": "host0"}], "ips": [{"version": "4", "address": "10.1.2.2/24"}]},
    )

    prev = load_conf(ipvlan.IpvlanConf, json.dumps(doc)).previous_result()

    assert prev is not None
    assert ipvlan.master_name(load_conf(ipvlan.IpvlanConf, json.dumps(doc)), prev) == "host0"
    assert [str(ip.address) for ip in prev.ips] == ["10.1.2.2/24"]


# --- the master's MTU ------------------------------------------------------------------


@pytest.mark.parametrize("mtu", [0, 1400, 1500])
def test_an_mtu_up_to_the_masters_is_accepted(mtu: int) -> None:
    master.check_mtu(mtu, master.Master(name="eth0", netns=None, mtu=1500))


def test_an_mtu_above_the_masters_is_error_7_naming_mtu() -> None:
    with pytest.raises(CniError) as caught:
        master.check_mtu(9000, master.Master(name="eth0", netns=None, mtu=1500))

    assert caught.value.code == Code.INVALID_NETWORK_CONFIG
    assert caught.value.msg.startswith("mtu:")
    assert "1500" in caught.value.msg and '"eth0"' in caught.value.msg


# --- IPAM presence and result shaping --------------------------------------------------


@pytest.mark.parametrize(("ipam", "expected"), [(None, False), ({}, False), ({"type": "host-local"}, True)])
def test_ipam_absent_or_empty_means_layer_2_only(ipam: dict[str, Any] | None, expected: bool) -> None:
    keys = {} if ipam is None else {"ipam": ipam}

    assert sublink.has_ipam(load_conf(macvlan.MacvlanConf, json.dumps(conf("macvlan", **keys)))) is expected


def test_an_ipam_object_without_type_is_error_7_naming_ipam_type() -> None:
    parsed = load_conf(macvlan.MacvlanConf, json.dumps(conf("macvlan", ipam={"subnet": "10.0.0.0/24"})))

    with pytest.raises(CniError) as caught:
        sublink.has_ipam(parsed)

    assert caught.value.code == Code.INVALID_NETWORK_CONFIG
    assert caught.value.msg.startswith("ipam.type:")
    assert sublink.names_ipam(parsed) is False  # DEL and GC do not fail on it


def test_every_allocated_ip_lands_on_interface_0_and_dns_stays_the_configs() -> None:
    base = Result(interfaces=[Interface(name="eth0", mac="0a:00:00:00:00:01")], dns=DNS(nameservers=["10.0.0.53"]))
    allocated = Result.from_wire(
        {
            "cniVersion": "1.0.0",
            "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}, {"address": "fd00::2/64", "interface": 3}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["1.1.1.1"]},
        }
    )

    result = sublink.addressed(base, allocated, where="ipam")

    assert [ip.interface for ip in result.ips] == [0, 0]
    assert result.interfaces == base.interfaces
    assert [str(route.dst) for route in result.routes] == ["0.0.0.0/0"]
    assert result.dns.nameservers == ["10.0.0.53"]


def test_an_allocation_without_ips_is_an_error() -> None:
    with pytest.raises(CniError) as caught:
        sublink.addressed(Result(interfaces=[Interface(name="eth0")]), Result(), where='ipam "static"')

    assert caught.value.msg == 'ipam "static": returned no IP configuration'


# --- gratuitous ARP --------------------------------------------------------------------


def test_the_gratuitous_arp_frame_announces_the_address_from_the_mac() -> None:
    frame = garp.frame("0a:01:02:03:04:05", ipaddress.IPv4Address("10.9.0.2"))

    mac, ip = bytes.fromhex("0a0102030405"), bytes([10, 9, 0, 2])
    assert len(frame) == 42
    assert frame[0:6] == b"\xff" * 6 and frame[6:12] == mac and frame[12:14] == b"\x08\x06"
    assert frame[14:22] == bytes.fromhex("0001080006040001")  # ethernet/IPv4, 6/4, request
    assert frame[22:28] == mac and frame[28:32] == ip  # sender
    assert frame[32:38] == b"\x00" * 6 and frame[38:42] == ip  # target: the same address


# --- verbs that answer before touching a link -----------------------------------------


PLUGINS = [pytest.param(macvlan.PLUGIN, "macvlan", id="macvlan"), pytest.param(ipvlan.PLUGIN, "ipvlan", id="ipvlan")]


@pytest.mark.parametrize(("plugin", "kind"), PLUGINS)
def test_add_with_a_bad_mode_is_error_7_through_the_skeleton(plugin: Any, kind: str) -> None:
    answer = run_in_process(plugin, environ("ADD"), conf(kind, mode="nope"))

    assert answer.rc == 1
    assert answer.code == Code.INVALID_NETWORK_CONFIG
    assert answer.msg.startswith("mode:")


@pytest.mark.parametrize(("plugin", "kind"), PLUGINS)
def test_add_with_an_untyped_ipam_is_error_7_before_any_link(plugin: Any, kind: str) -> None:
    answer = run_in_process(plugin, environ("ADD"), conf(kind, ipam={"subnet": "10.0.0.0/24"}))

    assert answer.code == Code.INVALID_NETWORK_CONFIG
    assert answer.msg.startswith("ipam.type:")


@pytest.mark.parametrize(("plugin", "kind"), PLUGINS)
def test_del_without_netns_and_ipam_succeeds_even_for_a_bad_config(plugin: Any, kind: str) -> None:
    env = environ("DEL") | {"CNI_NETNS": ""}

    answer = run_in_process(plugin, env, conf(kind, mode="nope", mtu=-1))

    assert (answer.rc, answer.doc) == (0, None)


@pytest.mark.parametrize(("plugin", "kind"), PLUGINS)
def test_status_and_gc_without_ipam_succeed(plugin: Any, kind: str) -> None:
    doc = conf(kind, cniVersion="1.1.0")

    assert run_in_process(plugin, environ("STATUS"), doc).rc == 0
    assert run_in_process(plugin, environ("GC"), doc | {"cni.dev/valid-attachments": []}).rc == 0


@pytest.mark.parametrize(("plugin", "kind"), PLUGINS)
def test_status_reports_a_bad_config(plugin: Any, kind: str) -> None:
    answer = run_in_process(plugin, environ("STATUS"), conf(kind, cniVersion="1.1.0", mode="x"))

    assert answer.code == Code.INVALID_NETWORK_CONFIG


@pytest.mark.parametrize(("plugin", "kind"), PLUGINS)
def test_check_without_prev_result_is_error_7(plugin: Any, kind: str) -> None:
    answer = run_in_process(plugin, environ("CHECK"), conf(kind))

    assert answer.code == Code.INVALID_NETWORK_CONFIG
    assert answer.msg.startswith("prevResult:")


@pytest.mark.parametrize(("plugin", "kind"), PLUGINS)
def test_check_fails_when_prev_result_has_no_interface_in_this_sandbox(plugin: Any, kind: str) -> None:
    prev = {"interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/other"}]}

    answer = run_in_process(plugin, environ("CHECK"), conf(kind, prevResult=prev))

    assert answer.rc == 1
    assert "eth0" in answer.msg and "/var/run/netns/test" in answer.msg


@pytest.mark.parametrize("name", ["macvlan", "netplex-macvlan", "ipvlan", "netplex-ipvlan"])
def test_the_registry_serves_both_delegates_in_process(name: str) -> None:
    plugin = registry.lookup(name)

    assert plugin is (macvlan.PLUGIN if "macvlan" in name else ipvlan.PLUGIN)
