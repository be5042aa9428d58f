"""cni.result: the result model and conversion among every version netplex speaks, checked
against the spec's example documents (tests/unit/cni/vectors)."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

import pytest

from cni import result, version
from cni.errors import CniError, Code
from cni.result import DNS, Interface, IPConfig, Result, Route

from .conftest import VECTORS, load_vector

VECTOR_FILES = sorted(path.name for path in VECTORS.glob("*.json"))
PAIRS = list(itertools.product(version.SUPPORTED_VERSIONS, repeat=2))


def expected_document(vector: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    """What converting the `source` document to `target` must give: the target's document,
    except that what an older version cannot carry stays lost on the way back to 1.1.0."""
    if not vector["lossless"] and target == "1.1.0" and source != "1.1.0":
        doc: dict[str, Any] = vector["upgraded_from_older"]
        return doc
    doc = vector["documents"][target]
    return doc


def test_there_are_vectors_for_every_version() -> None:
    assert len(VECTOR_FILES) >= 5
    for name in VECTOR_FILES:
        assert sorted(load_vector(name)["documents"]) == sorted(version.SUPPORTED_VERSIONS), name


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{s}->{t}" for s, t in PAIRS])
@pytest.mark.parametrize("name", VECTOR_FILES)
def test_conversion_gives_the_exact_document(name: str, source: str, target: str) -> None:
    vector = load_vector(name)
    converted = result.convert(vector["documents"][source], target)
    assert converted == expected_document(vector, source, target)


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{s}->{t}" for s, t in PAIRS])
@pytest.mark.parametrize("name", VECTOR_FILES)
def test_conversion_round_trips(name: str, source: str, target: str) -> None:
    vector = load_vector(name)
    there = result.convert(vector["documents"][source], target)
    back = result.convert(there, source)
    lost = not vector["lossless"] and source == "1.1.0" and target != "1.1.0"
    assert back == (vector["upgraded_from_older"] if lost else vector["documents"][source])


@pytest.mark.parametrize("name", [n for n in VECTOR_FILES if "as_written" in load_vector(n)])
def test_spec_documents_as_written_parse_in_their_version(name: str) -> None:
    vector = load_vector(name)
    spec_version = vector["spec_version"]
    as_written = {"cniVersion": spec_version, **vector["as_written"]}
    assert result.convert(as_written, spec_version) == vector["documents"][spec_version]


def test_1_1_to_0_3_1_adds_version_and_drops_the_1_1_fields() -> None:
    doc = load_vector("netplex-1.1.0-all-fields.json")["documents"]["1.1.0"]
    old = result.convert(doc, "0.3.1")
    assert [ip["version"] for ip in old["ips"]] == ["4", "6"]
    for iface in old["interfaces"]:
        assert not {"mtu", "socketPath", "pciID"} & set(iface)
    for route in old["routes"]:
        assert set(route) <= {"dst", "gw"}


def test_0_3_x_to_1_x_drops_version() -> None:
    doc = load_vector("spec-0.4.0-list-example-prev-result.json")["documents"]["0.3.0"]
    for target in ("1.0.0", "1.1.0"):
        assert all("version" not in ip for ip in result.convert(doc, target)["ips"])


def test_an_empty_result_is_just_its_version() -> None:
    for target in version.SUPPORTED_VERSIONS:
        assert Result().to_wire(target) == {"cniVersion": target}
        assert result.convert({"cniVersion": "0.4.0", "dns": {}}, target) == {"cniVersion": target}


def test_model_values_are_typed() -> None:
    parsed = Result.from_wire(load_vector("netplex-1.1.0-all-fields.json")["documents"]["1.1.0"])
    assert parsed.ips[0].address == ipaddress.ip_interface("10.1.0.5/16")
    assert parsed.ips[1].family == 6
    assert parsed.ips[0].gateway == ipaddress.ip_address("10.1.0.1")
    assert parsed.routes[0].dst == ipaddress.ip_network("0.0.0.0/0")
    assert parsed.interfaces[2].pci_id == "0000:00:1f.6"
    assert parsed.dns.search == ["svc.cluster.local"]


def test_built_results_speak_every_version() -> None:
    built = Result(
        interfaces=[Interface(name="eth0", mac="0a:58:0a:01:00:05", sandbox="/var/run/netns/blue", mtu=1450)],
        ips=[IPConfig(address=ipaddress.ip_interface("10.1.0.5/16"), interface=0)],
        routes=[Route(dst=ipaddress.ip_network("0.0.0.0/0"), gw=ipaddress.ip_address("10.1.0.1"), table=10)],
        dns=DNS(nameservers=["10.1.0.1"]),
    )
    assert built.to_wire("0.4.0") == {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:00:05", "sandbox": "/var/run/netns/blue"}],
        "ips": [{"version": "4", "address": "10.1.0.5/16", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        "dns": {"nameservers": ["10.1.0.1"]},
    }
    assert built.to_wire("1.1.0")["interfaces"][0]["mtu"] == 1450
    assert built.to_wire("1.1.0")["routes"][0]["table"] == 10
    assert built.with_version("0.3.1").cni_version == "0.3.1"


def test_host_bits_in_a_route_destination_are_masked_like_go() -> None:
    doc = result.convert({"cniVersion": "1.0.0", "routes": [{"dst": "10.1.2.3/16"}]}, "1.0.0")
    assert doc["routes"] == [{"dst": "10.1.0.0/16"}]


def test_an_empty_gateway_is_no_gateway() -> None:
    doc = result.convert({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/16", "gateway": ""}]}, "1.0.0")
    assert doc["ips"] == [{"address": "10.1.0.5/16"}]


def test_unknown_result_keys_are_ignored() -> None:
    doc = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/16", "extra": 1}], "vendor": {"x": 1}}
    assert result.convert(doc, "1.0.0") == {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/16"}]}


@pytest.mark.parametrize(
    ("doc", "code", "fragment"),
    [
        ("not an object", Code.DECODING_FAILURE, "prevResult: not a JSON object"),
        ({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}}, Code.INCOMPATIBLE_VERSION, "0.1/0.2"),
        ({"cniVersion": "2.0.0"}, Code.INCOMPATIBLE_VERSION, "prevResult: incompatible"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.300/16"}]}, Code.DECODING_FAILURE, "prevResult.ips.0"),
        ({"cniVersion": "1.0.0", "ips": [{"gateway": "10.1.0.1"}]}, Code.DECODING_FAILURE, "prevResult.ips.0.address"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/16", "interface": -1}]},
         Code.DECODING_FAILURE, "prevResult.ips.0.interface"),
        ({"cniVersion": "1.0.0", "routes": [{"dst": "nowhere"}]}, Code.DECODING_FAILURE, "prevResult.routes.0.dst"),
        ({"cniVersion": "1.0.0", "interfaces": [{"mac": "00:11:22:33:44:55"}]},
         Code.DECODING_FAILURE, "prevResult.interfaces.0.name"),
    ],
)
def test_bad_results_are_cni_errors_naming_the_field(doc: Any, code: int, fragment: str) -> None:
    with pytest.raises(CniError) as caught:
        Result.from_wire(doc, where="prevResult")
    assert caught.value.code == code
    assert fragment in caught.value.msg


def test_to_wire_refuses_a_version_we_do_not_speak() -> None:
    with pytest.raises(CniError) as caught:
        Result().to_wire("0.2.0")
    assert caught.value.code == Code.INCOMPATIBLE_VERSION


def test_a_result_without_cni_version_is_read_as_the_current_version() -> None:
    assert Result.from_wire({"ips": [{"address": "fd00::5/64"}]}).cni_version == version.CURRENT_VERSION


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"routes": [{"dst": False}]}, "routes.0.dst"),
        ({"routes": [{"dst": 0}]}, "routes.0.dst"),
        ({"routes": [{"dst": "10.0.0.0/8", "gw": 1}]}, "routes.0.gw"),
        ({"ips": [{"address": 167772162}]}, "ips.0.address"),
        ({"ips": [{"address": "10.0.0.2/24", "gateway": True}]}, "ips.0.gateway"),
    ],
)
def test_an_address_that_is_not_a_string_is_refused_naming_it(doc: dict[str, Any], field: str) -> None:
    # ipaddress takes integers (and so booleans) as addresses: `false` would be 0.0.0.0/32.
    with pytest.raises(CniError) as caught:
        Result.from_wire({"cniVersion": "1.0.0", **doc})
    assert caught.value.code == Code.DECODING_FAILURE and f"result.{field}" in caught.value.msg
