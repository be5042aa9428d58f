"""meta/status.py: network-status (NPWG v1.3 section 5), the merged result in both modes,
and the default-route decision."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cni.config import Conflist
from cni.errors import CniError, Code
from cni.result import Result
from meta import source, status
from meta.model import Attachment, DefaultRoute, NetworkSelection

NETNS = "/var/run/netns/pod"


def attachment(
    network: str, ifname: str, *, cluster: bool = False, element: dict[str, Any] | None = None
) -> Attachment:
    selection = None
    if element is not None:
        namespace, _, name = network.partition("/")
        selection = msgspec.convert({"name": name, "namespace": namespace, **element}, NetworkSelection)
    return Attachment(
        network=network,
        ifname=ifname,
        conflist=Conflist(name=network.replace("/", "-"), cni_version="1.0.0", plugins=[{"type": "bridge"}]),
        is_cluster_network=cluster,
        selection=selection,
    )


def result(doc: dict[str, Any]) -> Result:
    return Result.from_wire({"cniVersion": "1.0.0", **doc})


CLUSTER_RESULT = result(
    {
        "interfaces": [
            {"name": "cni0", "mac": "0a:00:00:00:00:01"},
            {"name": "veth1", "mac": "0a:00:00:00:00:02"},
            {"name": "eth0", "mac": "0a:58:0a:f4:01:05", "mtu": 1450, "sandbox": NETNS},
        ],
        "ips": [
            {"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 2},
            {"address": "fd00:10:244:1::5/64", "gateway": "fd00:10:244:1::1", "interface": 2},
            {"address": "10.244.1.1/24", "interface": 0},
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}, {"dst": "10.96.0.0/12"}],
        "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
    }
)
SIDE_RESULT = result(
    {
        "interfaces": [{"name": "net1", "mac": "02:00:00:00:00:09", "sandbox": NETNS}],
        "ips": [{"address": "192.168.1.20/24", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
)


def test_status_of_the_cluster_network_and_a_nad() -> None:
    entries = [
        (attachment("kube-system/cluster", "eth0", cluster=True), CLUSTER_RESULT),
        (attachment("team/side", "net1"), SIDE_RESULT),
    ]
    assert status.network_status(entries) == [
        {
            "name": "kube-system/cluster",
            "interface": "eth0",
            "ips": ["10.244.1.5", "fd00:10:244:1::5"],
            "mac": "0a:58:0a:f4:01:05",
            "mtu": 1450,
            "default": True,
            "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
            "gateway": ["10.244.1.1"],
        },
        {
            "name": "team/side",
            "interface": "net1",
            "ips": ["192.168.1.20"],
            "mac": "02:00:00:00:00:09",
            "default": False,
        },
    ]


def test_default_route_without_gateway_writes_no_gateway() -> None:
    (element,) = status.network_status([(attachment("team/side", "net1"), SIDE_RESULT)])
    assert "gateway" not in element
    assert "<nil>" not in json.dumps(element)


def test_host_interfaces_never_count() -> None:
    (element,) = status.network_status([(attachment("c", "eth0", cluster=True), CLUSTER_RESULT)])
    assert element["interface"] == "eth0"
    assert "10.244.1.1" not in element["ips"]  # the bridge's own address (interface 0)


def test_result_without_sandbox_interface_reports_unattributed_ips() -> None:
    calico = result(
        {
            "interfaces": [{"name": "cali05f4a1849c5"}],
            "ips": [{"address": "10.244.196.152/32"}, {"address": "fd10:244::c497/128"}],
        }
    )
    (element,) = status.network_status([(attachment("k8s-pod-network", "eth0", cluster=True), calico)])
    assert element == {"name": "k8s-pod-network", "ips": ["10.244.196.152", "fd10:244::c497"], "default": True}


def test_first_sandbox_interface_is_the_attachment() -> None:
    two = result(
        {
            "interfaces": [
                {"name": "eth1", "mac": "02:00:00:00:00:01", "sandbox": NETNS},
                {"name": "eth1.100", "mac": "02:00:00:00:00:02", "sandbox": NETNS},
            ],
            "ips": [{"address": "10.0.0.2/24", "interface": 0}, {"address": "10.1.0.2/24", "interface": 1}],
        }
    )
    (element,) = status.network_status([(attachment("team/trunk", "eth1"), two)])
    assert element["interface"] == "eth1" and element["ips"] == ["10.0.0.2"]


def test_missing_result_gives_a_minimal_element() -> None:
    entries = [(attachment("team/a", "net1"), None), (attachment("cbr0", "eth0", cluster=True), None)]
    assert status.network_status(entries) == [
        {"name": "team/a", "interface": "net1", "default": False},
        {"name": "cbr0", "interface": "eth0", "default": True},
    ]


def test_device_info_is_added_by_ifname() -> None:
    info = {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:03:00.1"}}
    entries = [(attachment("team/sriov", "net1"), SIDE_RESULT), (attachment("team/x", "net2"), None)]
    elements = status.network_status(entries, device_info={"net1": info, "net2": info})
    assert elements[0]["device-info"] == info
    assert elements[1]["device-info"] == info


def test_only_the_cluster_network_is_default() -> None:
    entries = [
        (attachment("team/a", "net1", element={"default-route": ["192.168.1.1"]}), SIDE_RESULT),
        (attachment("c", "eth0", cluster=True), CLUSTER_RESULT),
    ]
    assert [element["default"] for element in status.network_status(entries)] == [False, True]


def test_cache_entries_fit_the_protocol() -> None:
    class Cached:
        network = "team/a"
        ifname = "net1"
        is_cluster_network = False

    assert status.network_status([(Cached(), SIDE_RESULT)])[0]["name"] == "team/a"


# --- merged result ---------------------------------------------------------------------


def entries_side_first() -> list[tuple[Attachment, Result]]:
    return [
        (attachment("team/side", "net1"), SIDE_RESULT),
        (attachment("kube-system/cluster", "eth0", cluster=True), CLUSTER_RESULT),
    ]


def test_merged_result_in_cluster_mode() -> None:
    merged = status.merged_result(entries_side_first(), mode="cluster", cni_version="0.4.0")
    assert merged.cni_version == "0.4.0"
    assert [i.name for i in merged.interfaces] == ["cni0", "veth1", "eth0", "net1"]
    assert [(str(ip.address), ip.interface) for ip in merged.ips] == [
        ("10.244.1.5/24", 2),
        ("fd00:10:244:1::5/64", 2),
        ("10.244.1.1/24", 0),
    ]
    assert merged.routes == CLUSTER_RESULT.routes
    assert merged.dns == CLUSTER_RESULT.dns
    wire = merged.to_wire("0.4.0")
    assert wire["ips"][0]["version"] == "4"


def test_merged_result_in_all_mode_points_every_ip_at_its_interface() -> None:
    no_index = result(
        {"interfaces": [{"name": "host0"}, {"name": "net2", "sandbox": NETNS}], "ips": [{"address": "172.16.0.9/16"}]}
    )
    entries = [*entries_side_first(), (attachment("team/other", "net2"), no_index)]
    merged = status.merged_result(entries, mode="all", cni_version="1.0.0")
    assert [i.name for i in merged.interfaces] == ["cni0", "veth1", "eth0", "net1", "host0", "net2"]
    assert [(str(ip.address), ip.interface) for ip in merged.ips] == [
        ("10.244.1.5/24", 2),
        ("fd00:10:244:1::5/64", 2),
        ("10.244.1.1/24", 0),
        ("192.168.1.20/24", 3),
        ("172.16.0.9/16", 5),
    ]
    assert merged.routes == CLUSTER_RESULT.routes  # routes and DNS stay the cluster network's
    assert merged.dns == CLUSTER_RESULT.dns


def test_merged_result_without_cluster_interfaces() -> None:
    calico = result({"interfaces": [{"name": "cali1"}], "ips": [{"address": "10.0.0.1/32"}]})
    entries = [(attachment("c", "eth0", cluster=True), calico), (attachment("team/side", "net1"), SIDE_RESULT)]
    merged = status.merged_result(entries, mode="cluster", cni_version="1.0.0")
    assert [(str(ip.address), ip.interface) for ip in merged.ips] == [("10.0.0.1/32", None)]
    assert [i.name for i in merged.interfaces] == ["cali1", "net1"]


# --- default route ---------------------------------------------------------------------


def test_nobody_asks_for_the_default_route() -> None:
    plan = [attachment("c", "eth0", cluster=True), attachment("team/a", "net1", element={})]
    assert status.default_route_owner(plan) == []


def test_one_attachment_takes_the_ipv4_default_route() -> None:
    claim = {"default-route": ["192.168.1.1"]}
    plan = [attachment("c", "eth0", cluster=True), attachment("team/a", "net1", element=claim)]
    gateway = ipaddress.ip_address("192.168.1.1")
    assert status.default_route_owner(plan) == [DefaultRoute(family=4, owner=1, gateway=gateway)]


def test_families_may_go_to_different_attachments() -> None:
    plan = [
        attachment("c", "eth0", cluster=True),
        attachment("team/a", "net1", element={"default-route": ["fd00::1"]}),
        attachment("team/b", "net2", element={"default-route": ["10.0.0.1"]}),
    ]
    assert status.default_route_owner(plan) == [
        DefaultRoute(family=4, owner=2, gateway=ipaddress.ip_address("10.0.0.1")),
        DefaultRoute(family=6, owner=1, gateway=ipaddress.ip_address("fd00::1")),
    ]


def test_empty_default_route_keeps_the_attachments_own_routes() -> None:
    plan = [attachment("c", "eth0", cluster=True), attachment("team/a", "net1", element={"default-route": []})]
    assert status.default_route_owner(plan) == [
        DefaultRoute(family=4, owner=1, gateway=None),
        DefaultRoute(family=6, owner=1, gateway=None),
    ]


def test_two_claims_on_one_family_fail_naming_both() -> None:
    plan = [
        attachment("team/a", "net1", element={"default-route": ["10.0.0.1"]}),
        attachment("team/b", "net2", element={"default-route": ["10.0.0.2"]}),
    ]
    with pytest.raises(CniError) as info:
        status.default_route_owner(plan)
    assert info.value.code == Code.INVALID_NETWORK_CONFIG
    assert "team/a" in info.value.msg and "team/b" in info.value.msg


def test_without_default_route_drops_only_that_family() -> None:
    dual = result(
        {
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.0.0.1"},
                {"dst": "::/0", "gw": "fd00::1"},
                {"dst": "10.96.0.0/12", "gw": "10.0.0.1"},
            ]
        }
    )
    assert [str(r.dst) for r in status.without_default_route(dual, family=4).routes] == ["::/0", "10.96.0.0/12"]
    assert [str(r.dst) for r in status.without_default_route(dual, family=6).routes] == ["0.0.0.0/0", "10.96.0.0/12"]


def test_with_default_route_replaces_the_gateway() -> None:
    changed = status.with_default_route(SIDE_RESULT, family=4, gateway=ipaddress.ip_address("192.168.1.254"))
    assert [(str(r.dst), str(r.gw)) for r in changed.routes] == [("0.0.0.0/0", "192.168.1.254")]
    (element,) = status.network_status([(attachment("team/side", "net1"), changed)])
    assert element["gateway"] == ["192.168.1.254"]
    v6 = status.with_default_route(SIDE_RESULT, family=6, gateway=ipaddress.ip_address("fd00::1"))
    assert [str(r.dst) for r in v6.routes] == ["0.0.0.0/0", "::/0"]


# What a network-status entry holds: strings (any Unicode), integers, booleans, null,
# and lists and objects of them (no floats: nothing in the NPWG status is one).
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.text(), _JSON, max_size=6), max_size=3))
def test_network_status_is_encoded_as_the_stdlibs_indenting_encoder_writes_it(entries: list[dict[str, Any]]) -> None:
    expected = "[" + ",".join(json.dumps(entry, indent=4, ensure_ascii=False) for entry in entries) + "]"
    assert source.encode_network_status(entries) == expected
