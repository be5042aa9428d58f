"""static IPAM through the plugin skeleton: config addresses, the runtime's overrides,
no-op DEL/GC, CHECK against prevResult, and errors naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.delegates.conftest import VERSIONS, Runner, net

BASE: dict[str, Any] = {
    "type": "static",
    "addresses": [
        {"address": "10.10.0.5/24", "gateway": "10.10.0.1"},
        {"address": "fd00::5/64"},
    ],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.0.254"}],
    "dns": {"nameservers": ["10.10.0.53"], "domain": "example.org", "search": ["example.org"]},
}


def addresses(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(ip["address"], ip.get("gateway")) for ip in doc["ips"]]


@pytest.mark.parametrize("version", VERSIONS)
def test_add_returns_the_configured_addresses_routes_and_dns(static: Runner, version: str) -> None:
    answer = static("ADD", net(BASE, version=version))
    assert answer.rc == 0, answer.doc
    v4: dict[str, Any] = {"address": "10.10.0.5/24", "gateway": "10.10.0.1"}
    v6: dict[str, Any] = {"address": "fd00::5/64"}
    if version.startswith("0."):
        v4, v6 = {"version": "4", **v4}, {"version": "6", **v6}
    assert answer.doc == {
        "cniVersion": version,
        "ips": [v4, v6],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.0.254"}],
        "dns": {"nameservers": ["10.10.0.53"], "domain": "example.org", "search": ["example.org"]},
    }


def test_cni_args_ip_is_appended_and_gateway_set_by_subnet(static: Runner) -> None:
    answer = static("ADD", net(BASE), cni_args="IgnoreUnknown=1;IP=10.20.0.7/24, fd01::7/64;GATEWAY=10.20.0.1,fd00::1")
    assert addresses(answer.doc) == [
        ("10.10.0.5/24", "10.10.0.1"),
        ("fd00::5/64", "fd00::1"),
        ("10.20.0.7/24", "10.20.0.1"),
        ("fd01::7/64", None),
    ]


def test_args_cni_ips_replace_the_configured_addresses(static: Runner) -> None:
    answer = static("ADD", net(BASE, args={"cni": {"ips": ["10.30.0.3/24"]}}))
    assert addresses(answer.doc) == [("10.30.0.3/24", None)]


def test_runtime_config_ips_win_over_everything(static: Runner) -> None:
    conf = net(BASE, args={"cni": {"ips": ["10.30.0.3/24"]}}, runtimeConfig={"ips": ["10.40.0.4/16", "fd02::4/64"]})
    answer = static("ADD", conf, cni_args="IP=10.20.0.7/24")
    assert addresses(answer.doc) == [("10.40.0.4/16", None), ("fd02::4/64", None)]


def test_no_addresses_gives_an_empty_result(static: Runner) -> None:
    answer = static("ADD", net({"type": "static"}))
    assert answer.doc == {"cniVersion": "1.0.0"}


@pytest.mark.parametrize(
    ("ipam", "message"),
    [
        ({"type": "static", "addresses": [{"address": "10.0.0.300/24"}]}, "ipam.addresses.0.address: invalid CIDR"),
        (
            {"type": "static", "addresses": [{"address": "10.0.0.3/24"}, {"address": "10.0.0.4"}]},
            "ipam.addresses.1.address: invalid CIDR '10.0.0.4': missing prefix length",
        ),
        ({"type": "static", "addresses": [{}]}, "ipam.addresses.0.address: missing address"),
        (
            {"type": "static", "addresses": [{"address": "10.0.0.3/24", "gateway": "nope"}]},
            "ipam.addresses.0.gateway: invalid IP address",
        ),
        (
            {"type": "static", "addresses": [{"address": "10.0.0.3/24", "gateway": "fd00::1"}]},
            "ipam.addresses.0.gateway: fd00::1 is not an IPv4 address",
        ),
        ({"type": "static", "addresses": {"address": "10.0.0.3/24"}}, "ipam.addresses: must be a list"),
        ({"type": "static", "routes": [{"dst": "x"}]}, "ipam.routes.0.dst: "),
        ({"type": "static", "dns": {"nameservers": "10.0.0.53"}}, "ipam.dns.nameservers: "),
    ],
)
def test_bad_config_is_error_7_naming_the_key(static: Runner, ipam: dict[str, Any], message: str) -> None:
    answer = static("ADD", net(ipam))
    assert answer.code == 7, answer.doc
    assert answer.msg.startswith(message)


def test_bad_runtime_config_ip_names_its_index(static: Runner) -> None:
    answer = static("ADD", net(BASE, runtimeConfig={"ips": ["10.1.1.1/24", "bogus/8"]}))
    assert answer.code == 7
    assert answer.msg.startswith("runtimeConfig.ips.1: invalid CIDR")


@pytest.mark.parametrize(("cni_args", "key"), [("IP=10.0.0.1", "CNI_ARGS IP"), ("GATEWAY=x", "CNI_ARGS GATEWAY")])
def test_bad_cni_args_are_error_4(static: Runner, cni_args: str, key: str) -> None:
    answer = static("ADD", net(BASE), cni_args=cni_args)
    assert answer.code == 4
    assert answer.msg.startswith(f"{key}: ")


def test_missing_ipam_is_error_7(static: Runner) -> None:
    answer = static("ADD", {"cniVersion": "1.0.0", "name": "n", "type": "macvlan"})
    assert (answer.code, answer.msg) == (7, "ipam: missing IPAM configuration")


def test_del_and_gc_succeed_with_nothing_to_do(static: Runner) -> None:
    assert static("DEL", net(BASE)).rc == 0
    assert static("DEL", net(BASE)).rc == 0
    assert static("GC", {**net(BASE, version="1.1.0"), "cni.dev/valid-attachments": []}).rc == 0
    assert static("STATUS", net(BASE, version="1.1.0")).rc == 0


def test_check_passes_against_a_matching_prev_result(static: Runner) -> None:
    added = static("ADD", net(BASE))
    prev = {k: v for k, v in added.doc.items() if k != "cniVersion"}
    assert static("CHECK", net(BASE, prevResult=prev)).rc == 0
    assert static("CHECK", net(BASE)).rc == 0  # nothing to compare with


def test_check_fails_when_an_address_is_missing_from_prev_result(static: Runner) -> None:
    prev = {"ips": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}]}
    answer = static("CHECK", net(BASE, prevResult=prev))
    assert answer.rc == 1
    assert answer.msg == "static: fd00::5/64 (ipam.addresses.1) is missing from prevResult"


def test_check_fails_on_a_different_gateway(static: Runner) -> None:
    prev = {"ips": [{"address": "10.10.0.5/24", "gateway": "10.10.0.9"}, {"address": "fd00::5/64"}]}
    answer = static("CHECK", net(BASE, prevResult=prev))
    assert answer.rc == 1
    assert "has gateway 10.10.0.9 in prevResult, want 10.10.0.1" in answer.msg
