"""host-local through the plugin skeleton, in-process: ADD/DEL/CHECK/STATUS/GC, the
reference's allocation rules, requested addresses, and config errors naming the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.unit.delegates.conftest import VERSIONS, Runner, net


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    return str(tmp_path / "networks")


def v4(data_dir: str, subnet: str = "10.1.0.0/29", **extra: Any) -> dict[str, Any]:
    return {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": subnet}]], **extra}


def files(data_dir: str, network: str = "testnet") -> dict[str, bytes]:
    directory = os.path.join(data_dir, network)
    return {name: Path(directory, name).read_bytes() for name in sorted(os.listdir(directory))}


def addresses(answer: Any) -> list[str]:
    return [ip["address"] for ip in answer.doc["ips"]]


@pytest.mark.parametrize("version", VERSIONS)
def test_add_returns_address_gateway_and_routes_in_the_config_version(
    host_local: Runner, data_dir: str, version: str
) -> None:
    conf = net(v4(data_dir, routes=[{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.0.6"}]), version=version)
    answer = host_local("ADD", conf)
    assert answer.rc == 0, answer.doc
    ip: dict[str, Any] = {"address": "10.1.0.2/29", "gateway": "10.1.0.1"}
    if version.startswith("0."):
        ip = {"version": "4", **ip}
    assert answer.doc == {
        "cniVersion": version,
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.0.6"}],
    }


def test_add_writes_the_reference_store_layout(host_local: Runner, data_dir: str) -> None:
    assert host_local("ADD", net(v4(data_dir)), container_id="ctr-1", ifname="net1").rc == 0
    assert files(data_dir) == {"10.1.0.2": b"ctr-1\r\nnet1", "last_reserved_ip.0": b"10.1.0.2", "lock": b""}


def test_dual_stack_gets_one_address_per_range_set(host_local: Runner, data_dir: str) -> None:
    ipam = {
        "type": "host-local",
        "dataDir": data_dir,
        "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00::/64"}]],
    }
    answer = host_local("ADD", net(ipam))
    assert answer.doc["ips"] == [
        {"address": "10.1.0.2/24", "gateway": "10.1.0.1"},
        {"address": "fd00::2/64", "gateway": "fd00::1"},
    ]
    assert {"last_reserved_ip.0", "last_reserved_ip.1", "fd00::2"} <= set(files(data_dir))


def test_allocation_goes_round_robin_past_released_addresses(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir))
    got = [addresses(host_local("ADD", conf, container_id=f"c{i}"))[0] for i in range(3)]
    assert got == ["10.1.0.2/29", "10.1.0.3/29", "10.1.0.4/29"]
    assert host_local("DEL", conf, container_id="c0").rc == 0
    assert addresses(host_local("ADD", conf, container_id="c3")) == ["10.1.0.5/29"]
    assert addresses(host_local("ADD", conf, container_id="c4")) == ["10.1.0.6/29"]
    assert addresses(host_local("ADD", conf, container_id="c5")) == ["10.1.0.2/29"]  # wrapped round


def test_exhausted_range_is_error_11_and_reserves_nothing(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir, subnet="10.1.0.0/30"))  # .1 gateway, .2 the only address
    assert host_local("ADD", conf, container_id="a").rc == 0
    answer = host_local("ADD", conf, container_id="b")
    assert answer.rc == 1
    assert answer.code == 11
    assert answer.msg == "no IP addresses available in range set 0: 10.1.0.1-10.1.0.2"
    assert set(files(data_dir)) == {"10.1.0.2", "last_reserved_ip.0", "lock"}


def test_a_failure_in_a_later_range_set_releases_the_earlier_ones(host_local: Runner, data_dir: str) -> None:
    ipam = {
        "type": "host-local",
        "dataDir": data_dir,
        "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/30"}]],
    }
    assert host_local("ADD", net(ipam), container_id="a").rc == 0
    answer = host_local("ADD", net(ipam), container_id="b")
    assert answer.code == 11
    assert "range set 1" in answer.msg
    assert {n for n in files(data_dir) if n[0].isdigit()} == {"10.1.0.2", "10.2.0.2"}


def test_second_add_for_the_same_attachment_is_refused(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir))
    assert host_local("ADD", conf).rc == 0
    again = host_local("ADD", conf)
    assert again.code == 100
    assert again.msg == "10.1.0.2 has been allocated to c1 (eth0), duplicate allocation is not allowed"
    assert host_local("ADD", conf, ifname="net1").rc == 0  # another interface is another attachment
    assert {n for n in files(data_dir) if n[0].isdigit()} == {"10.1.0.2", "10.1.0.3"}


def test_legacy_single_range_keys_become_range_set_0(host_local: Runner, data_dir: str) -> None:
    ipam = {
        "type": "host-local",
        "dataDir": data_dir,
        "subnet": "10.5.0.0/24",
        "rangeStart": "10.5.0.50",
        "rangeEnd": "10.5.0.60",
        "gateway": "10.5.0.254",
        "ranges": [[{"subnet": "fd00::/64"}]],
    }
    answer = host_local("ADD", net(ipam))
    assert answer.doc["ips"] == [
        {"address": "10.5.0.50/24", "gateway": "10.5.0.254"},
        {"address": "fd00::2/64", "gateway": "fd00::1"},
    ]
    assert files(data_dir)["last_reserved_ip.0"] == b"10.5.0.50"


def test_runtime_ip_ranges_come_first(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir), runtimeConfig={"ipRanges": [[{"subnet": "10.7.0.0/24"}]]})
    assert addresses(host_local("ADD", conf)) == ["10.7.0.2/24", "10.1.0.2/29"]


def test_range_from_file_is_used_when_nothing_else_is_configured(
    host_local: Runner, data_dir: str, tmp_path: Path
) -> None:
    range_file = tmp_path / "range.json"
    range_file.write_text('{"subnet": "10.8.0.0/24", "rangeStart": "10.8.0.20"}')
    ipam = {"type": "host-local", "dataDir": data_dir, "rangeFromFile": str(range_file)}
    assert addresses(host_local("ADD", net(ipam))) == ["10.8.0.20/24"]


@pytest.mark.parametrize(
    ("conf_extra", "cni_args", "expected"),
    [
        ({"runtimeConfig": {"ips": ["10.1.0.5"]}}, "", ["10.1.0.5/29"]),
        ({"runtimeConfig": {"ips": ["10.1.0.5/29"]}}, "", ["10.1.0.5/29"]),
        ({"args": {"cni": {"ips": ["10.1.0.6"]}}}, "", ["10.1.0.6/29"]),
        ({}, "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.1.0.4", ["10.1.0.4/29"]),
    ],
)
def test_requested_address_is_given(
    host_local: Runner, data_dir: str, conf_extra: dict[str, Any], cni_args: str, expected: list[str]
) -> None:
    answer = host_local("ADD", net(v4(data_dir), **conf_extra), cni_args=cni_args)
    assert addresses(answer) == expected


def test_requested_addresses_go_to_the_range_set_holding_them(host_local: Runner, data_dir: str) -> None:
    ipam = {
        "type": "host-local",
        "dataDir": data_dir,
        "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00::/64"}]],
    }
    answer = host_local("ADD", net(ipam), cni_args="IP=fd00::99,10.1.0.77")
    assert addresses(answer) == ["10.1.0.77/24", "fd00::99/64"]


@pytest.mark.parametrize(
    ("conf_extra", "key"),
    [
        ({"runtimeConfig": {"ips": ["192.168.9.9"]}}, "runtimeConfig.ips.0"),
        ({"args": {"cni": {"ips": ["10.1.0.2", "192.168.9.9"]}}}, "args.cni.ips.1"),
    ],
)
def test_requested_address_outside_every_range_is_error_7_naming_the_key(
    host_local: Runner, data_dir: str, conf_extra: dict[str, Any], key: str
) -> None:
    answer = host_local("ADD", net(v4(data_dir), **conf_extra))
    assert answer.code == 7
    assert answer.msg.startswith(f"{key}: requested IP 192.168.9.9 is not in any range set")
    assert not any(n[0].isdigit() for n in files(data_dir))  # nothing leaked


def test_requested_address_taken_by_another_container_is_error_11(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir), runtimeConfig={"ips": ["10.1.0.5"]})
    assert host_local("ADD", conf, container_id="a").rc == 0
    answer = host_local("ADD", conf, container_id="b")
    assert answer.code == 11
    assert answer.msg == "requested IP address 10.1.0.5 is not available in range set 10.1.0.1-10.1.0.6"


def test_requesting_the_gateway_is_refused(host_local: Runner, data_dir: str) -> None:
    answer = host_local("ADD", net(v4(data_dir), runtimeConfig={"ips": ["10.1.0.1"]}))
    assert answer.code == 7
    assert answer.msg == "runtimeConfig.ips.0: requested IP 10.1.0.1 is the gateway"


def test_bad_cni_args_ip_is_error_4(host_local: Runner, data_dir: str) -> None:
    answer = host_local("ADD", net(v4(data_dir)), cni_args="IP=10.1.0.300")
    assert answer.code == 4
    assert answer.msg.startswith("CNI_ARGS IP: invalid IP address")


@pytest.mark.parametrize(
    ("ipam", "message"),
    [
        ({"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/33"}]]}, "ipam.ranges.0.0.subnet: invalid CIDR"),
        (
            {
                "type": "host-local",
                "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.1.0/24"}, {"subnet": "x"}]],
            },
            "ipam.ranges.1.1.subnet: invalid CIDR",
        ),
        ({"type": "host-local", "subnet": "10.0.0.1/24"}, "ipam.subnet: 10.0.0.1/24 has host bits set"),
        ({"type": "host-local"}, "ipam.ranges: no IP ranges specified"),
        ({"type": "host-local", "ranges": "10.0.0.0/24"}, "ipam.ranges: must be a list of range sets"),
        (
            {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]},
            "ipam.ranges.1.0: range set 1 (10.0.0.1-10.0.0.126) overlaps range set 0",
        ),
        (
            {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": [{"dst": "300.0.0.0/8"}]},
            "ipam.routes.0.dst: ",
        ),
        ({"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": [{}]}, "ipam.routes.0.dst: missing"),
        ({"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}]], "dataDir": "rel"}, "ipam.dataDir: "),
    ],
)
def test_bad_config_is_error_7_naming_the_key(host_local: Runner, ipam: dict[str, Any], message: str) -> None:
    answer = host_local("ADD", net(ipam))
    assert answer.code == 7, answer.doc
    assert answer.msg.startswith(message)


def test_missing_ipam_section_is_error_7(host_local: Runner) -> None:
    answer = host_local("ADD", {"cniVersion": "1.0.0", "name": "n", "type": "bridge"})
    assert (answer.code, answer.msg) == (7, "ipam: missing IPAM configuration")


def test_resolv_conf_becomes_the_dns_of_the_result(host_local: Runner, data_dir: str, tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "# generated\n; also a comment\nnameserver 10.0.0.53\nnameserver fd00::53\n"
        "domain example.org\nsearch a.example b.example\nsearch c.example\noptions ndots:5 edns0\nbogus\n"
    )
    answer = host_local("ADD", net(v4(data_dir, resolvConf=str(resolv))))
    assert answer.doc["dns"] == {
        "nameservers": ["10.0.0.53", "fd00::53"],
        "domain": "example.org",
        "search": ["a.example", "b.example", "c.example"],
        "options": ["ndots:5", "edns0"],
    }


def test_unreadable_resolv_conf_is_error_5_naming_the_key(host_local: Runner, data_dir: str, tmp_path: Path) -> None:
    answer = host_local("ADD", net(v4(data_dir, resolvConf=str(tmp_path / "missing"))))
    assert answer.code == 5
    assert answer.msg.startswith("ipam.resolvConf: cannot read")


def test_del_releases_and_is_idempotent(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir))
    host_local("ADD", conf)
    host_local("ADD", conf, ifname="net1")
    assert host_local("DEL", conf).rc == 0
    assert files(data_dir)["10.1.0.3"] == b"c1\r\nnet1"
    assert "10.1.0.2" not in files(data_dir)
    assert host_local("DEL", conf).rc == 0


def test_del_without_any_store_succeeds_and_creates_nothing(host_local: Runner, data_dir: str) -> None:
    assert host_local("DEL", net(v4(data_dir))).rc == 0
    assert not os.path.exists(data_dir)


def test_del_needs_no_valid_ranges(host_local: Runner, data_dir: str) -> None:
    host_local("ADD", net(v4(data_dir)))
    broken = net({"type": "host-local", "dataDir": data_dir, "ranges": "garbage"})
    assert host_local("DEL", broken).rc == 0
    assert not any(n[0].isdigit() for n in files(data_dir))


def test_del_releases_reference_legacy_files(host_local: Runner, data_dir: str) -> None:
    os.makedirs(os.path.join(data_dir, "testnet"))
    Path(data_dir, "testnet", "10.1.0.2").write_bytes(b"old-ctr\n")
    assert addresses(host_local("ADD", net(v4(data_dir)))) == ["10.1.0.3/29"]  # .2 is held
    assert host_local("DEL", net(v4(data_dir)), container_id="old-ctr").rc == 0
    assert "10.1.0.2" not in files(data_dir)


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_check_passes_for_a_reserved_attachment(host_local: Runner, data_dir: str, version: str) -> None:
    conf = net(v4(data_dir), version=version)
    added = host_local("ADD", conf)
    prev = {k: v for k, v in added.doc.items() if k != "cniVersion"}
    assert host_local("CHECK", {**conf, "prevResult": prev}).rc == 0


def test_check_fails_with_code_3_after_del(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir))
    host_local("ADD", conf)
    host_local("DEL", conf)
    answer = host_local("CHECK", conf)
    assert answer.code == 3
    assert answer.msg == 'host-local: no address reserved for container "c1" (eth0) in network "testnet"'


def test_check_fails_when_prev_result_holds_an_address_not_reserved(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir))
    host_local("ADD", conf)
    prev = {"ips": [{"address": "10.1.0.5/29", "gateway": "10.1.0.1"}]}
    answer = host_local("CHECK", {**conf, "prevResult": prev})
    assert answer.code == 3
    assert "10.1.0.5 of prevResult is not reserved" in answer.msg


def test_gc_releases_every_attachment_not_listed(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir), version="1.1.0")
    for cid, ifname in (("keep", "eth0"), ("keep", "net1"), ("gone", "eth0")):
        assert host_local("ADD", conf, container_id=cid, ifname=ifname).rc == 0
    Path(data_dir, "testnet", "10.1.0.6").write_bytes(b"legacy-keep")
    Path(data_dir, "testnet", "10.1.0.5").write_bytes(b"legacy-gone")
    Path(data_dir, "testnet", ".tmp-reserve-x.part").write_bytes(b"half")
    gc_conf = {
        **conf,
        "cni.dev/valid-attachments": [
            {"containerID": "keep", "ifname": "eth0"},
            {"containerID": "legacy-keep", "ifname": "eth0"},
        ],
    }
    assert host_local("GC", gc_conf).rc == 0
    assert files(data_dir) == {
        "10.1.0.2": b"keep\r\neth0",
        "10.1.0.6": b"legacy-keep",
        "last_reserved_ip.0": b"10.1.0.4",
        "lock": b"",
    }


def test_gc_with_an_empty_list_releases_everything(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir), version="1.1.0")
    host_local("ADD", conf)
    assert host_local("GC", {**conf, "cni.dev/valid-attachments": []}).rc == 0
    assert set(files(data_dir)) == {"last_reserved_ip.0", "lock"}


def test_gc_without_the_attachment_list_is_refused(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir), version="1.1.0")
    host_local("ADD", conf)
    answer = host_local("GC", conf)
    assert (answer.code, answer.msg) == (7, "cni.dev/valid-attachments: missing from the GC config")
    assert "10.1.0.2" in files(data_dir)


def test_gc_rejects_malformed_attachments(host_local: Runner, data_dir: str) -> None:
    conf = {**net(v4(data_dir), version="1.1.0"), "cni.dev/valid-attachments": [{"containerID": "x"}]}
    answer = host_local("GC", conf)
    assert answer.code == 7
    assert answer.msg.startswith("cni.dev/valid-attachments.0: ")


def test_status_succeeds_with_a_usable_store(host_local: Runner, data_dir: str) -> None:
    assert host_local("STATUS", net(v4(data_dir), version="1.1.0")).rc == 0


def test_status_is_50_when_the_data_dir_cannot_be_made(host_local: Runner, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    answer = host_local("STATUS", net(v4(str(blocker / "sub")), version="1.1.0"))
    assert answer.code == 50
    assert "is not usable" in answer.msg


def test_unwritable_data_dir_on_add_is_error_5(host_local: Runner, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    answer = host_local("ADD", net(v4(str(blocker))))
    assert answer.code == 5
    assert answer.msg.startswith(f'host-local: data dir "{blocker}/testnet"')


def test_requesting_again_the_address_this_attachment_holds_is_a_duplicate(host_local: Runner, data_dir: str) -> None:
    conf = net(v4(data_dir), runtimeConfig={"ips": ["10.1.0.5"]})
    assert host_local("ADD", conf).rc == 0
    answer = host_local("ADD", conf)
    assert answer.code == 100
    assert answer.msg.startswith("10.1.0.5 has been allocated to c1 (eth0)")
