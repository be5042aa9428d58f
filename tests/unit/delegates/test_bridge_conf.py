"""The bridge delegate without the kernel: config parsing and validation (error 7 naming
the key), gateway planning, nftables tags, host veth aliases, and the verbs that must fail
before touching any link."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import msgspec
import pytest

from cni import skel
from cni.errors import CniError, Code
from cni.result import DNS, Interface, IPConfig, Result, Route
from delegates import common, masq, registry
from delegates.bridge import config, gateway, ownership
from delegates.bridge import plugin as bridge
from delegates.netlink import links
from tests.unit.delegates.conftest import environ, run_in_process


def conf(**keys: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "net1", "type": "bridge", **keys}


def load(**keys: Any) -> config.BridgeConf:
    return config.load(json.dumps(conf(**keys)))


def load_error(**keys: Any) -> CniError:
    with pytest.raises(CniError) as caught:
        load(**keys)
    return caught.value


# --- config -------------------------------------------------------------------------------


def test_defaults_are_the_reference_ones() -> None:
    parsed = load()

    assert parsed.bridge == "cni0"
    assert parsed.preserve_default_vlan is True
    assert (parsed.is_gateway, parsed.is_default_gateway, parsed.ip_masq, parsed.hairpin_mode) == (
        False,
        False,
        False,
        False,
    )
    assert (parsed.mtu, parsed.vlan, parsed.vlan_trunk) == (0, 0, None)
    assert not parsed.is_layer3
    assert not parsed.vlan_filtering


def test_keys_match_in_any_case_as_go_decodes_them() -> None:
    parsed = load(isgateway=True, IPMASQ=True, vlantrunk=[{"ID": 7}, {"minid": 10, "MaxID": 11}])

    assert parsed.is_gateway and parsed.ip_masq
    assert parsed.trunk_vids == [7, 10, 11]


def test_is_default_gateway_implies_gateway_mode() -> None:
    assert load(isDefaultGateway=True).gateway_mode


@pytest.mark.parametrize(
    ("ipam", "layer3"),
    [(None, False), ({}, False), ({"subnet": "10.0.0.0/24"}, False), ({"type": "host-local"}, True)],
)
def test_only_an_ipam_type_makes_the_network_layer_3(ipam: dict[str, Any] | None, layer3: bool) -> None:
    assert load(**({} if ipam is None else {"ipam": ipam})).is_layer3 is layer3


def test_vlan_trunk_ids_are_merged_sorted_and_unique() -> None:
    parsed = load(vlanTrunk=[{"id": 101}, {"minID": 200, "maxID": 202}, {"id": 201}])

    assert parsed.trunk_vids == [101, 200, 201, 202]
    assert parsed.vlan_filtering


@pytest.mark.parametrize(
    ("keys", "where"),
    [
        ({"vlan": 5000}, "vlan"),
        ({"vlan": -1}, "vlan"),
        ({"vlan": "ten"}, "vlan"),
        ({"mtu": 70000}, "mtu"),
        ({"mtu": 10}, "mtu"),
        ({"bridge": "a-bridge-name-too-long"}, "bridge"),
        ({"bridge": "br/0"}, "bridge"),
        ({"isGateway": "maybe"}, "isGateway"),
        ({"vlanTrunk": [{"minID": 10}]}, "vlanTrunk.0"),
        ({"vlanTrunk": [{"minID": 20, "maxID": 10}]}, "vlanTrunk.0"),
        ({"vlanTrunk": [{"id": 0}]}, "vlanTrunk.0.id"),
        ({"vlanTrunk": [{"id": 4095}]}, "vlanTrunk.0.id"),
        ({"vlanTrunk": {"id": 3}}, "vlanTrunk"),
        ({"ipMasqBackend": "pf"}, "ipMasqBackend"),
    ],
)
def test_a_bad_value_is_error_7_naming_the_key(keys: dict[str, Any], where: str) -> None:
    err = load_error(**keys)

    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert err.msg.startswith(f"{where}: "), err.msg


@pytest.mark.parametrize(
    ("keys", "where"),
    [
        ({"hairpinMode": True, "promiscMode": True}, "promiscMode"),
        ({"disableContainerInterface": True, "ipam": {"type": "host-local"}}, "disableContainerInterface"),
    ],
)
def test_conflicting_keys_are_refused_before_add_touches_anything(keys: dict[str, Any], where: str) -> None:
    with pytest.raises(CniError) as caught:
        config.check_for_add(load(**keys))

    assert caught.value.code == Code.INVALID_NETWORK_CONFIG
    assert caught.value.msg.startswith(f"{where}: ")


def test_vlan_and_trunk_together_make_a_trunk_with_a_native_vlan() -> None:
    parsed = load(vlan=5, vlanTrunk=[{"id": 6}])

    assert (parsed.vlan, parsed.trunk_vids) == (5, [6])


# --- gateway planning ---------------------------------------------------------------------

INTERFACES = [Interface(name="br0"), Interface(name="veth0"), Interface(name="eth0", sandbox="/run/netns/x")]


def ipam_result(*addresses: str, gateway_ip: str | None = None, routes: list[Route] | None = None) -> Result:
    gateway_address = ipaddress.ip_address(gateway_ip) if gateway_ip else None
    ips = [IPConfig(address=ipaddress.ip_interface(a), gateway=gateway_address) for a in addresses]
    return Result(ips=ips, routes=routes or [])


def test_every_ip_points_at_the_container_interface() -> None:
    planned = gateway.plan(ipam_result("10.1.0.5/24", "fd00::5/64"), load(), INTERFACES)

    assert [ip.interface for ip in planned.result.ips] == [2, 2]
    assert planned.result.interfaces == INTERFACES
    assert planned.gateways == ()


def test_is_gateway_fills_the_missing_gateway_with_the_first_address() -> None:
    planned = gateway.plan(ipam_result("10.1.0.5/24", "fd00::5/64"), load(isGateway=True), INTERFACES)

    assert [str(ip.gateway) for ip in planned.result.ips] == ["10.1.0.1", "fd00::1"]
    assert [str(g) for g in planned.gateways] == ["10.1.0.1/24", "fd00::1/64"]
    assert planned.families() == {4, 6}
    assert planned.result.routes == []


def test_is_default_gateway_adds_one_default_route_per_family() -> None:
    planned = gateway.plan(
        ipam_result("10.1.0.5/24", "10.2.0.5/24", gateway_ip=None), load(isDefaultGateway=True), INTERFACES
    )

    assert [(str(r.dst), str(r.gw)) for r in planned.result.routes] == [("0.0.0.0/0", "10.1.0.1")]


def test_a_default_route_from_ipam_is_kept_instead() -> None:
    route = Route(dst=ipaddress.ip_network("0.0.0.0/0"), gw=ipaddress.ip_address("10.1.0.254"))
    planned = gateway.plan(
        ipam_result("10.1.0.5/24", gateway_ip="10.1.0.254", routes=[route]), load(isDefaultGateway=True), INTERFACES
    )

    assert planned.result.routes == [route]
    assert [str(g) for g in planned.gateways] == ["10.1.0.254/24"]


def test_dns_in_the_config_replaces_ipam_dns() -> None:
    allocated = msgspec.structs.replace(ipam_result("10.1.0.5/24"), dns=DNS(nameservers=["10.0.0.53"]))

    kept = gateway.plan(allocated, load(), INTERFACES)
    replaced = gateway.plan(allocated, load(dns={"nameservers": ["1.1.1.1"]}), INTERFACES)

    assert kept.result.dns.nameservers == ["10.0.0.53"]
    assert replaced.result.dns.nameservers == ["1.1.1.1"]


def test_a_vlan_gateway_name_longer_than_an_ifname_is_error_7() -> None:
    assert gateway.vlan_interface_name("br0", 100) == "br0.100"
    with pytest.raises(CniError) as caught:
        gateway.vlan_interface_name("bridge-long-1", 4000)
    assert caught.value.code == Code.INVALID_NETWORK_CONFIG


# --- nftables tags ------------------------------------------------------------------------


def test_a_tag_names_network_and_attachment() -> None:
    assert masq.attachment_tag("net1", "abc123", "eth0") == "netplex net1 abc123/eth0"


def test_long_or_unusual_ids_are_hashed_but_stay_deterministic_and_short() -> None:
    long_id = "c" * 200
    tag = masq.attachment_tag("net1", long_id, "eth0")
    odd = masq.attachment_tag("net1", "abc", 'a"b')

    assert tag == masq.attachment_tag("net1", long_id, "eth0")
    assert tag.startswith("netplex net1 #") and len(tag) <= masq.MAX_TAG
    assert '"' not in odd and odd != masq.attachment_tag("net1", "abc", "a_b")
    assert masq.network_part("n" * 60).startswith("#")


# --- host veth aliases --------------------------------------------------------------------


def test_an_alias_names_network_and_attachment_and_parses_back() -> None:
    alias = ownership.alias_for("net1", "abc123", "eth0")

    assert alias == "netplex:net1:abc123/eth0"
    assert ownership.owner_of(alias) == ("net1", "abc123/eth0")


def test_an_unusual_network_name_is_hashed_so_the_alias_stays_parseable() -> None:
    alias = ownership.alias_for("team:a/b", "abc", "net1")

    owner = ownership.owner_of(alias)
    assert owner is not None and owner[0] == masq.network_part("team:a/b") and owner[0].startswith("#")
    assert owner[1] == "abc/net1"


def test_a_long_attachment_is_hashed_and_the_alias_fits_the_kernels_limit() -> None:
    long_id = "c" * 256
    alias = ownership.alias_for("n" * 48, long_id, "eth0")

    assert len(alias.encode()) <= links.MAX_ALIAS and alias == ownership.alias_for("n" * 48, long_id, "eth0")
    assert alias.startswith(f"netplex:{'n' * 48}:#")
    assert alias != ownership.alias_for("n" * 48, long_id, "eth1")


@pytest.mark.parametrize(
    "alias", [None, "", "uplink to rack 3", "netplex", "netplex:net1", "netplex::a/b", "other:net1:a/b"]
)
def test_aliases_netplex_did_not_write_have_no_owner(alias: str | None) -> None:
    assert ownership.owner_of(alias) is None


def test_port_isolation_is_accepted_as_the_reference_spells_it() -> None:
    assert load(portIsolation=True).port_isolation
    assert load(portisolation=True).port_isolation  # Go matches keys in any case
    config.check_for_add(load(portIsolation=True))


def test_a_string_for_a_boolean_is_refused_as_go_refuses_it() -> None:
    err = load_error(portIsolation="true")  # the reference's json.Unmarshal: cannot unmarshal string

    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert err.msg.startswith("portIsolation: "), err.msg


# --- the requested MAC -------------------------------------------------------------------


def mac_of(parsed: config.BridgeConf, args: skel.CmdArgs) -> str | None:
    """The MAC the bridge ADD asks for, read from the config as the plugin reads it."""
    return common.requested_mac(parsed.runtime_config, parsed.args, args)


def test_the_requested_mac_follows_the_reference_bridge_precedence() -> None:
    args = skel.CmdArgs(command="ADD", args="IgnoreUnknown=1;MAC=02:00:00:00:00:03")
    everything = load(runtimeConfig={"mac": "02:00:00:00:00:01"}, args={"cni": {"mac": "02:00:00:00:00:02"}})
    no_runtime = load(args={"cni": {"mac": "02:00:00:00:00:02"}})

    assert mac_of(everything, args) == "02:00:00:00:00:01"
    assert mac_of(no_runtime, args) == "02:00:00:00:00:02"
    assert mac_of(load(), args) == "02:00:00:00:00:03"
    assert mac_of(load(), skel.CmdArgs(command="ADD")) is None


def test_a_malformed_mac_is_error_7_naming_where_it_came_from() -> None:
    with pytest.raises(CniError) as caught:
        mac_of(load(runtimeConfig={"mac": "not-a-mac"}), skel.CmdArgs(command="ADD"))

    assert caught.value.code == Code.INVALID_NETWORK_CONFIG
    assert caught.value.msg.startswith("runtimeConfig.mac: ")


# --- verbs that fail before any link is touched -------------------------------------------


def test_the_registry_serves_the_bridge_plugin_under_both_names() -> None:
    assert registry.lookup("bridge") is bridge.PLUGIN
    assert registry.lookup("netplex-bridge") is bridge.PLUGIN


@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_add_and_del_with_a_bad_vlan_answer_error_7(command: str) -> None:
    answer = run_in_process(bridge.PLUGIN, environ(command), conf(vlan=4095))

    assert (answer.rc, answer.code) == (1, Code.INVALID_NETWORK_CONFIG)
    assert answer.msg.startswith("vlan: ")


def test_add_with_hairpin_and_promisc_answers_error_7() -> None:
    answer = run_in_process(bridge.PLUGIN, environ("ADD"), conf(hairpinMode=True, promiscMode=True))

    assert (answer.rc, answer.code) == (1, Code.INVALID_NETWORK_CONFIG)


def test_gc_without_valid_attachments_is_refused() -> None:
    answer = run_in_process(bridge.PLUGIN, environ("GC"), conf(cniVersion="1.1.0"))

    assert (answer.rc, answer.code) == (1, Code.INVALID_NETWORK_CONFIG)
    assert answer.msg.startswith("cni.dev/valid-attachments: ")


def test_check_without_prev_result_is_refused() -> None:
    answer = run_in_process(bridge.PLUGIN, environ("CHECK"), conf())

    assert (answer.rc, answer.code) == (1, Code.INVALID_NETWORK_CONFIG)
    assert answer.msg.startswith("prevResult: ")
