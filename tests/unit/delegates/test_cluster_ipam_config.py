"""netplex-ipam's config (whereabouts keys) and block arithmetic: pure, no API."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from cni import skel
from cni.errors import CniError
from delegates.ipam.cluster import blocks, config


def load(**ipam: Any) -> config.ClusterConfig:
    conf = {"cniVersion": "1.0.0", "name": "net", "ipam": {"type": "netplex-ipam", **ipam}}
    return config.load(json.dumps(conf).encode(), skel.CmdArgs(command="ADD", args="K8S_POD_NAME=p"))


def test_a_whereabouts_range_with_start_and_end_reads_as_whereabouts_does() -> None:
    [pool_range] = load(range="192.168.2.225-192.168.2.230/28", gateway="192.168.2.225").ranges
    assert str(pool_range.subnet) == "192.168.2.224/28"
    assert (str(pool_range.start), str(pool_range.end)) == ("192.168.2.225", "192.168.2.230")
    allocatable = [str(ip) for ip in blocks.addresses(pool_range, pool_range.subnet)]
    assert allocatable == [f"192.168.2.{i}" for i in range(226, 231)]  # the gateway is never handed out


def test_range_start_range_end_and_exclude_narrow_the_range() -> None:
    [pool_range] = load(
        range="10.0.0.0/24", range_start="10.0.0.10", range_end="10.0.0.20", exclude=["10.0.0.12/30"]
    ).ranges
    got = [str(ip) for ip in blocks.addresses(pool_range, pool_range.subnet)]
    assert got == ["10.0.0.10", "10.0.0.11", "10.0.0.16", "10.0.0.17", "10.0.0.18", "10.0.0.19", "10.0.0.20"]


def test_ip_ranges_give_dual_stack_with_default_block_sizes() -> None:
    conf = load(ipRanges=[{"range": "10.1.0.0/24"}, {"range": "fd00:1::/64"}], routes=[{"dst": "0.0.0.0/0"}],
                dns={"nameservers": ["10.1.0.53"]}, network_name="tenant")
    assert [(r.family, r.block_prefix) for r in conf.ranges] == [(4, 28), (6, 124)]
    assert conf.network_name == "tenant" and conf.dns.nameservers == ["10.1.0.53"] and len(conf.routes) == 1
    assert blocks.pool_name(conf.network_name, conf.ranges[1].subnet) == "tenant.fd00-1---64"


@pytest.mark.parametrize("value", [26, "26", "/26"])
def test_block_size_takes_a_prefix_length_in_any_spelling(value: object) -> None:
    [pool_range] = load(range="10.2.0.0/24", block_size=value).ranges
    assert pool_range.block_prefix == 26 and blocks.block_count(pool_range) == 4


def test_node_slice_size_is_read_as_the_block_size() -> None:
    assert load(range="10.2.0.0/16", node_slice_size="/22").ranges[0].block_prefix == 22


def test_a_block_larger_than_the_subnet_is_the_subnet() -> None:
    assert load(range="10.3.0.0/29").ranges[0].block_prefix == 29


@pytest.mark.parametrize(
    ("ipam", "where"),
    [
        ({}, "ipam.range"),
        ({"range": "10.0.0.0"}, "ipam.range"),
        ({"range": "10.0.0.0/31"}, "ipam.range"),
        ({"range": "10.0.0.0/24", "range_end": "10.0.1.5"}, "ipam.range_end"),
        ({"range": "10.0.0.0/24", "range_start": "10.0.0.9", "range_end": "10.0.0.5"}, "ipam.range_start"),
        ({"range": "10.0.0.0/24", "exclude": ["x"]}, "ipam.exclude.0"),
        ({"range": "10.0.0.0/24", "block_size": "big"}, "ipam.block_size"),
        ({"ipRanges": [{"range": "10.0.0.0/24"}, {"range": "10.0.0.128/25"}]}, "ipam.ipRanges.1"),
        ({"range": "10.0.0.0/24", "kubernetes": "kc"}, "ipam.kubernetes"),
        ({"range": "10.0.0.0/24", "dataDir": "relative"}, "ipam.dataDir"),
        ({"range": "10.0.0.0/24", "dns": {"nameservers": "x"}}, "ipam.dns.nameservers"),
    ],
)
def test_bad_keys_are_error_7_naming_the_key(ipam: dict[str, Any], where: str) -> None:
    with pytest.raises(CniError) as caught:
        load(**ipam)
    assert caught.value.code == 7 and caught.value.msg.startswith(where), caught.value.msg


def test_nodes_start_their_search_at_different_blocks_and_cover_all() -> None:
    [pool_range] = load(range="10.4.0.0/24").ranges
    starts = {next(blocks.candidate_blocks(pool_range, f"node-{i}")) for i in range(20)}
    assert len(starts) > 5
    every = list(blocks.candidate_blocks(pool_range, "node-1"))
    assert sorted(every, key=lambda n: int(n.network_address)) == list(pool_range.subnet.subnets(new_prefix=28))


def test_names_are_valid_object_names() -> None:
    subnet = ipaddress.ip_network("fd00::/64")
    name = blocks.block_name(blocks.pool_name("Tenant_A", subnet), ipaddress.ip_network("fd00::10/124"))
    assert name == "tenant-a.fd00---64.fd00--10-124"
    assert len(blocks.pool_name("x" * 300, subnet)) <= 200
    assert len(blocks.label_value("n" * 100)) <= 63


def test_the_node_is_the_config_s_then_the_daemon_s_then_node_name_then_the_host() -> None:
    light = load(range="10.0.0.0/24")
    assert config.resolve_node(light, "d", {"NODE_NAME": "e"}) == "d"
    assert config.resolve_node(light, "", {"NODE_NAME": "e"}) == "e"
    assert config.resolve_node(load(range="10.0.0.0/24", nodeName="c"), "d", {}) == "c"
