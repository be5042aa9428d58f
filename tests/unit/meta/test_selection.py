"""meta/selection.py: both forms of k8s.v1.cni.cncf.io/networks, every NPWG v1.3 key,
and the errors for malformed, huge and garbage annotations."""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

import pytest

from cni.errors import CniError, Code
from meta import selection
from meta.model import Bandwidth, NetworkSelection, PortMapping


def parse(text: str, namespace: str = "pod-ns") -> list[NetworkSelection]:
    return selection.parse_selection(text, pod_namespace=namespace)


def parse_json(elements: list[Any]) -> list[NetworkSelection]:
    return parse(json.dumps(elements))


def failure(text: str) -> CniError:
    with pytest.raises(CniError) as info:
        parse(text)
    return info.value


def test_blank_annotation_selects_nothing() -> None:
    assert parse("") == []
    assert parse("   \n") == []


def test_comma_form_names_networks_in_the_pod_namespace() -> None:
    selections = parse("net-a,net-b")
    assert [(s.namespace, s.name, s.interface) for s in selections] == [
        ("pod-ns", "net-a", ""),
        ("pod-ns", "net-b", ""),
    ]


def test_comma_form_takes_namespace_and_interface() -> None:
    selections = parse(" other-ns/net-c@eth7 , net-d@net9,x/y ")
    assert [(s.namespace, s.name, s.interface) for s in selections] == [
        ("other-ns", "net-c", "eth7"),
        ("pod-ns", "net-d", "net9"),
        ("x", "y", ""),
    ]
    assert selections[0].key == "other-ns/net-c"


def test_comma_form_accepts_dotted_object_names() -> None:
    assert parse("ns/net.v2")[0].name == "net.v2"


def test_same_network_twice_gives_two_elements() -> None:
    assert [s.key for s in parse("net-a,net-a")] == ["pod-ns/net-a", "pod-ns/net-a"]


def test_json_form_minimal() -> None:
    (only,) = parse_json([{"name": "net-a"}])
    assert only == NetworkSelection(name="net-a", namespace="pod-ns")
    assert only.default_route is None
    assert only.capability_args() == {}


def test_json_form_reads_every_key() -> None:
    element = {
        "name": "net-b",
        "namespace": "other",
        "interface": "data0",
        "ips": ["10.2.2.42/24", "2001:db8::5"],
        "mac": "02:23:45:67:89:01",
        "default-route": ["10.2.2.1", "2001:db8::1"],
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "192.0.2.1"}],
        "bandwidth": {"ingressRate": 1000, "ingressBurst": 2000, "egressRate": 3000, "egressBurst": 4000},
        "cni-args": {"foo": "bar", "n": 1},
        "infiniband-guid": "c2:11:22:33:44:55:66:77",
        "ipam-claim-reference": "vm-a.data0",
        "deviceID": "0000:03:00.1",
    }
    (only,) = parse_json([element])
    assert only.name == "net-b" and only.namespace == "other" and only.interface == "data0"
    assert only.ips == ("10.2.2.42/24", "2001:db8::5")
    assert only.mac == "02:23:45:67:89:01"
    assert only.default_route == (ipaddress.ip_address("10.2.2.1"), ipaddress.ip_address("2001:db8::1"))
    assert only.port_mappings == (PortMapping(host_port=8080, container_port=80, protocol="tcp", host_ip="192.0.2.1"),)
    assert only.bandwidth == Bandwidth(ingress_rate=1000, ingress_burst=2000, egress_rate=3000, egress_burst=4000)
    assert only.cni_args == {"foo": "bar", "n": 1}
    assert only.infiniband_guid == "c2:11:22:33:44:55:66:77"
    assert only.ipam_claim_reference == "vm-a.data0"
    assert only.device_id == "0000:03:00.1"
    assert only.capability_args() == {
        "ips": ["10.2.2.42/24", "2001:db8::5"],
        "mac": "02:23:45:67:89:01",
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "192.0.2.1"}],
        "bandwidth": {"ingressRate": 1000, "ingressBurst": 2000, "egressRate": 3000, "egressBurst": 4000},
        "infinibandGUID": "c2:11:22:33:44:55:66:77",
        "deviceID": "0000:03:00.1",
    }


def test_json_form_empty_namespace_means_the_pod_namespace() -> None:
    assert parse_json([{"name": "a", "namespace": ""}])[0].namespace == "pod-ns"


def test_json_null_reads_as_absent() -> None:
    (only,) = parse_json([{"name": "a", "ips": None, "cni-args": None, "default-route": None}])
    assert only.ips == () and only.cni_args is None and only.default_route is None


def test_empty_default_route_is_kept_apart_from_absent() -> None:
    assert parse_json([{"name": "a", "default-route": []}])[0].default_route == ()


def test_multus_pre_3_2_interface_request_is_read() -> None:
    assert parse_json([{"name": "a", "interfaceRequest": "eth3"}])[0].interface == "eth3"
    assert parse_json([{"name": "a", "interfaceRequest": "eth3", "interface": "eth4"}])[0].interface == "eth4"


def test_ipoib_mac_of_20_bytes_is_valid() -> None:
    mac = ":".join(["80"] + ["00"] * 19)
    assert parse_json([{"name": "a", "mac": mac}])[0].mac == mac


def test_ip_without_prefix_is_valid() -> None:
    assert parse_json([{"name": "a", "ips": ["10.0.0.5"]}])[0].ips == ("10.0.0.5",)


def test_unknown_reserved_key_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="meta.selection"):
        (only,) = parse_json([{"name": "a", "ipz": ["1.2.3.4"], "org.example.key": 1}])
    assert only.name == "a"
    assert "'ipz'" in caplog.text
    assert "org.example.key" not in caplog.text  # dotted keys belong to other implementations


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a,,b", "element 1"),
        ("a,b,", "element 2"),
        ("ns/", "element 0 ('ns/')"),
        ("/net", "empty namespace"),
        ("a/b/c", "element 0 ('a/b/c')"),
        ("a@b@c", "element 0"),
        ("net@", "empty interface"),
        ("Net-A", "element 0 ('Net-A'): name"),
        ("ns_1/net", "namespace"),
        ("../etc", "element 0"),
        ("net@this-is-far-too-long0", "longer than 15"),
        ("net@a/b", "element 0"),
        ("net@..", "interface"),
        ("net@ a b", "interface"),
        ("-net", "name"),
        ("x" * 254, "name"),
        ("ns" * 40 + "/net", "namespace"),
    ],
)
def test_bad_comma_element_is_error_7_naming_it(text: str, needle: str) -> None:
    err = failure(text)
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert err.msg.startswith("k8s.v1.cni.cncf.io/networks: element"), err.msg
    assert needle in err.msg, err.msg


@pytest.mark.parametrize(
    ("elements", "needle"),
    [
        ([{"namespace": "x"}], "element 0: name: required key missing"),
        ([{"name": 5}], "name"),
        ([{"name": "a"}, "b"], "element 1: not a JSON object"),
        ([{"name": "a"}, {"name": "b", "ips": ["10.0.0.300"]}], "element 1 ('b'): ips"),
        ([{"name": "a", "ips": "10.0.0.1"}], "ips"),
        ([{"name": "a", "mac": "02:00:00:00:00"}], "mac"),
        ([{"name": "a", "mac": "zz:00:00:00:00:01"}], "mac"),
        ([{"name": "a", "default-route": ["10.0.0.0/24"]}], "default-route"),
        ([{"name": "a", "default-route": "10.0.0.1"}], "default-route"),
        ([{"name": "a", "portMappings": [{"hostPort": 80}]}], "portMappings.0.containerPort"),
        ([{"name": "a", "portMappings": [{"hostPort": "80", "containerPort": 80}]}], "portMappings.0.hostPort"),
        ([{"name": "a", "portMappings": [{"hostPort": 70000, "containerPort": 80}]}], "portMappings.0.hostPort"),
        ([{"name": "a", "portMappings": [{"hostPort": 1, "containerPort": 1, "hostIP": "x"}]}], "hostIP"),
        ([{"name": "a", "bandwidth": {"ingressRate": -1}}], "bandwidth.ingressRate"),
        ([{"name": "a", "bandwidth": {"ingresRate": 1}}], "bandwidth.ingresRate"),
        ([{"name": "a", "cni-args": ["x"]}], "cni-args"),
        ([{"name": "a", "infiniband-guid": "02:00:00:00:00:01"}], "infiniband-guid"),
        ([{"name": "a", "ipam-claim-reference": "Bad Name"}], "ipam-claim-reference"),
        ([{"name": "a", "interface": "eth0:1"}], "interface"),
        ([{"name": "a", "interface": 3}], "interface"),
        ([{"name": "a", "namespace": "../../etc"}], "namespace"),
        ([{"name": "../../etc/passwd"}], "name"),
    ],
)
def test_bad_json_element_is_error_7_naming_it(elements: list[Any], needle: str) -> None:
    err = failure(json.dumps(elements))
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert err.msg.startswith("k8s.v1.cni.cncf.io/networks: element"), err.msg
    assert needle in err.msg, err.msg


@pytest.mark.parametrize("text", ['[{"name": "a"', '{"name": "a"}', '"a"', "[1, 2", '["a" "b"]', "[" * 100000])
def test_unparseable_json_is_a_decoding_error(text: str) -> None:
    assert failure(text).code in (Code.DECODING_FAILURE, Code.INVALID_NETWORK_CONFIG)
    if len(text) < 100:
        assert failure(text).code == Code.DECODING_FAILURE


def test_huge_annotation_is_refused() -> None:
    err = failure("a," * 40000)
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "KiB" in err.msg


def test_too_many_networks_are_refused() -> None:
    err = failure(",".join(["net"] * 65))
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "more than 64" in err.msg


@pytest.mark.parametrize("text", ["\x00\x01\x02", "net\u00e9", "😀", "a;b", "a b"])
def test_garbage_is_refused(text: str) -> None:
    assert failure(text).code == Code.INVALID_NETWORK_CONFIG


def test_default_network_reads_in_the_netplex_namespace() -> None:
    chosen = selection.parse_default_network("calico", namespace="kube-system")
    assert chosen.key == "kube-system/calico"


def test_default_network_accepts_both_forms() -> None:
    assert selection.parse_default_network("ns/calico", namespace="kube-system").key == "ns/calico"
    chosen = selection.parse_default_network('[{"name": "calico", "namespace": "other"}]', namespace="kube-system")
    assert chosen.key == "other/calico"


@pytest.mark.parametrize("value", ["a,b", "[]", " "])
def test_default_network_wants_exactly_one(value: str) -> None:
    with pytest.raises(CniError) as info:
        selection.parse_default_network(value, namespace="kube-system")
    assert info.value.code == Code.INVALID_NETWORK_CONFIG
    assert info.value.msg.startswith("v1.multus-cni.io/default-network")


def test_default_network_errors_name_its_annotation() -> None:
    with pytest.raises(CniError) as info:
        selection.parse_default_network("Bad", namespace="kube-system")
    assert info.value.msg.startswith("v1.multus-cni.io/default-network: element 0")
