"""netplex-ipam against the API double over real HTTP, in-process, several "nodes" in one
process (each call names its node with `nodeName`): blocks, records, idempotency,
release, GC, gone nodes, retries under injected API failures, and IPAMClaims."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cni.errors import CniError
from tests.kube.ipam_scene import IpamScene, add_retrying, ipam_api_fixture, new_container  # noqa: F401

pytestmark = pytest.mark.kube


def test_a_repeated_add_returns_the_same_address_and_writes_nothing(ipam_api: IpamScene) -> None:
    conf = ipam_api.conf(nodeName="node-1")
    cid = new_container()
    first = ipam_api.add(conf, container_id=cid, pod="a")
    ipam_api.api.clear_requests()
    assert ipam_api.add(conf, container_id=cid, pod="a") == first
    assert ipam_api.api.requests == []
    assert ipaddress.ip_address(first) in ipaddress.ip_network("10.77.0.0/24")
    assert ipam_api.records()[first]["container_id"] == cid


def test_a_node_claims_one_block_and_then_allocates_without_api_writes(ipam_api: IpamScene) -> None:
    conf = ipam_api.conf(nodeName="node-1")
    addresses = [ipam_api.add(conf, container_id=new_container(), pod=f"p{i}") for i in range(10)]
    owners = ipam_api.block_owners()
    assert list(owners.values()) == ["node-1"]
    [block] = [ipaddress.ip_network(cidr) for cidr in owners]
    assert block.prefixlen == 28 and all(ipaddress.ip_address(ip) in block for ip in addresses)
    assert ipam_api.writes() == {"POST": 2}  # the pool and the block, nothing per address
    assert len(set(addresses)) == 10


def test_the_gateway_network_and_broadcast_addresses_are_never_handed_out(ipam_api: IpamScene) -> None:
    conf = ipam_api.conf(nodeName="node-1", range="10.77.0.0/28", gateway="10.77.0.1", exclude=["10.77.0.4/31"])
    got = {ipam_api.add(conf, container_id=new_container()) for _ in range(11)}
    assert got == {f"10.77.0.{i}" for i in (2, 3, *range(6, 15))}
    with pytest.raises(CniError) as caught:
        ipam_api.add(conf, container_id=new_container())
    assert caught.value.code == 11 and "no free address" in caught.value.msg


def test_a_full_block_makes_the_node_claim_another(ipam_api: IpamScene) -> None:
    conf = ipam_api.conf(nodeName="node-2", block_size=29)
    got = [ipam_api.add(conf, container_id=new_container()) for _ in range(20)]
    assert len(set(got)) == 20
    owners = ipam_api.block_owners()
    assert set(owners.values()) == {"node-2"} and len(owners) >= 3


def test_nodes_get_disjoint_blocks_and_never_the_same_address(ipam_api: IpamScene) -> None:
    seen: dict[str, str] = {}
    for round_ in range(8):
        for node in ("node-1", "node-2", "node-3"):
            ip = ipam_api.add(ipam_api.conf(nodeName=node), container_id=new_container(), pod=f"{node}-{round_}")
            assert ip not in seen, f"{ip} given to {node} and {seen.get(ip)}"
            seen[ip] = node
    owners = ipam_api.block_owners()
    for ip, node in seen.items():
        [cidr] = [cidr for cidr in owners if ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)]
        assert owners[cidr] == node


def test_del_releases_without_the_api_and_twice_is_fine(ipam_api: IpamScene) -> None:
    conf = ipam_api.conf(nodeName="node-1")
    cid = new_container()
    ip = ipam_api.add(conf, container_id=cid, pod="gone")
    ipam_api.api.stop()
    try:
        assert ipam_api.call("DEL", conf, container_id=cid) is None
        assert ipam_api.call("DEL", conf, container_id=cid) is None
    finally:
        ipam_api.api.start()
    assert ip not in ipam_api.records()


def test_gc_releases_what_the_runtime_no_longer_lists(ipam_api: IpamScene) -> None:
    conf = ipam_api.conf(nodeName="node-1")
    kept, dropped = new_container(), new_container()
    kept_ip = ipam_api.add(conf, container_id=kept)
    dropped_ip = ipam_api.add(conf, container_id=dropped)
    other_network = ipam_api.add(ipam_api.conf(name="other", nodeName="node-1"), container_id=new_container())
    gc_conf = conf | {"cni.dev/valid-attachments": [{"containerID": kept, "ifname": "net1"}]}
    ipam_api.call("GC", gc_conf)
    assert set(ipam_api.records()) == {kept_ip, other_network}
    assert dropped_ip not in ipam_api.records()


def test_a_gone_nodes_block_is_taken_over_only_once_its_pods_are_gone(ipam_api: IpamScene) -> None:
    small = {"range": "10.77.0.0/27", "block_size": 28}
    held = ipam_api.add(ipam_api.conf(nodeName="node-1", **small), container_id=new_container())
    ipam_api.add(ipam_api.conf(nodeName="node-2", **small), container_id=new_container())
    conf3 = ipam_api.conf(nodeName="node-3", **small)
    with pytest.raises(CniError) as caught:  # both blocks belong to live nodes
        ipam_api.add(conf3, container_id=new_container())
    assert caught.value.code == 11
    ipam_api.api.delete_object(ipam_api.nodes, "node-1")
    ipam_api.api.add_pod("default", "still-there", node_name="node-1")
    with pytest.raises(CniError):  # node-1's object is gone, but a pod is still bound to it
        ipam_api.add(conf3, container_id=new_container())
    ipam_api.api.delete_pod("default", "still-there")
    taken = ipam_api.add(conf3, container_id=new_container())
    block = ipaddress.ip_network((held, 28), strict=False)
    assert ipaddress.ip_address(taken) in block
    assert ipam_api.block_owners()[str(block)] == "node-3"


def test_five_nodes_allocating_at_once_under_api_failures_never_duplicate(ipam_api: IpamScene) -> None:
    chaos = ipam_api.api.chaos(conflict=0.15, error=0.1, lost_reply=0.15, stall=0.1, stall_seconds=0.2, seed=14)
    nodes = [f"node-{i}" for i in range(1, 6)]
    jobs = [(nodes[i % 5], new_container()) for i in range(100)]

    def one(job: tuple[str, str]) -> str:
        node, cid = job
        return add_retrying(ipam_api, ipam_api.conf(nodeName=node, block_size=30), container_id=cid, pod=cid)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        got = list(pool.map(one, jobs))
    ipam_api.api.chaos()
    assert len(set(got)) == len(got) == 100
    assert set(chaos.counts) == {"conflict", "error", "lost_reply", "stall"}, chaos.counts
    records = ipam_api.records()
    assert set(records) == set(got)
    owners = ipam_api.block_owners()
    for (node, _), ip in zip(jobs, got, strict=True):
        [cidr] = [c for c in owners if ipaddress.ip_address(ip) in ipaddress.ip_network(c)]
        assert owners[cidr] == node
    for node, cid in jobs:
        ipam_api.call("DEL", ipam_api.conf(nodeName=node, block_size=30), container_id=cid)
    assert ipam_api.records() == {}


def test_a_claim_keeps_its_address_across_pods_and_nodes_until_it_is_deleted(ipam_api: IpamScene) -> None:
    ipam_api.add_claim("vms", "vm-a")
    first = new_container()
    ip = ipam_api.add(ipam_api.conf(nodeName="node-1", claim="vm-a"), container_id=first, pod="virt-a", namespace="vms")
    claim = ipam_api.claim("vms", "vm-a")
    assert claim is not None and claim["status"] == {"ips": [f"{ip}/24"], "ownerPod": "virt-a"}
    ipam_api.call("DEL", ipam_api.conf(nodeName="node-1", claim="vm-a"), container_id=first)
    assert ipam_api.records()[ip]["claim"] == "vms/vm-a"  # the claim still holds it
    others = {ipam_api.add(ipam_api.conf(nodeName="node-1"), container_id=new_container()) for _ in range(20)}
    assert ip not in others
    second = new_container()
    moved = ipam_api.add(
        ipam_api.conf(nodeName="node-4", claim="vm-a"), container_id=second, pod="virt-a2", namespace="vms"
    )
    assert moved == ip
    ipam_api.call("DEL", ipam_api.conf(nodeName="node-4", claim="vm-a"), container_id=second)
    ipam_api.api.delete_object(ipam_api.claims, "vm-a", "vms")
    ipam_api.call("GC", ipam_api.conf(nodeName="node-1") | {"cni.dev/valid-attachments": []})
    assert ip not in ipam_api.records()


def test_a_missing_claim_is_error_11_naming_it(ipam_api: IpamScene) -> None:
    with pytest.raises(CniError) as caught:
        ipam_api.add(ipam_api.conf(nodeName="node-1", claim="nope"), container_id=new_container(), pod="p")
    assert caught.value.code == 11 and '"default/nope"' in caught.value.msg
    assert ipam_api.records() == {}


def test_the_executable_works_in_thin_mode_with_its_kubeconfig(ipam_api: IpamScene, tmp_path: Path) -> None:
    binary = str(Path(sys.executable).with_name("netplex-ipam"))
    conf = ipam_api.conf()
    env = {
        "PATH": os.environ.get("PATH", ""), "NODE_NAME": "node-5", "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "thin1", "CNI_NETNS": "/var/run/netns/x", "CNI_IFNAME": "net1", "CNI_PATH": "/opt/cni/bin",
    }
    proc = subprocess.run(
        [binary], input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ip = json.loads(proc.stdout)["ips"][0]["address"].split("/")[0]
    assert ipam_api.records()[ip]["container_id"] == "thin1"
    assert set(ipam_api.block_owners().values()) == {"node-5"}
    proc = subprocess.run(
        [binary], input=json.dumps(conf).encode(), env=env | {"CNI_COMMAND": "DEL", "CNI_NETNS": ""},
        capture_output=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ipam_api.records() == {}


@pytest.mark.parametrize(
    ("ipam", "where"),
    [
        ({"range": "10.1.0.0"}, "ipam.range"),
        ({"range": "10.1.0.0/24", "range_start": "10.2.0.1"}, "ipam.range_start"),
        ({"range": "", "ipRanges": [{"range": "fd00::/64"}, {"range": "nonsense/9"}]}, "ipam.ipRanges.1.range"),
        ({"block_size": "/33"}, "ipam.block_size"),
        ({"kubernetes": {"kubeconfig": "/nonexistent/kubeconfig"}}, "ipam.kubernetes.kubeconfig"),
    ],
)
def test_bad_config_is_error_7_naming_the_key(ipam_api: IpamScene, ipam: dict[str, object], where: str) -> None:
    with pytest.raises(CniError) as caught:
        ipam_api.add(ipam_api.conf(nodeName="node-1", **ipam), container_id=new_container())
    assert caught.value.code == 7 and caught.value.msg.startswith(where), caught.value.msg


def test_with_the_api_down_a_node_keeps_allocating_from_its_blocks(ipam_api: IpamScene) -> None:
    conf = ipam_api.conf(nodeName="node-1")
    first = ipam_api.add(conf, container_id=new_container())
    from delegates.ipam.cluster import context

    for owner in list(context._owners.values()):
        owner._ttl = 0.0  # the cache has expired: the next ADD lists again, and cannot
    ipam_api.api.stop()
    try:
        second = ipam_api.add(conf, container_id=new_container())
    finally:
        ipam_api.api.start()
    assert second != first and ipaddress.ip_network((first, 28), strict=False) == ipaddress.ip_network(
        (second, 28), strict=False
    )


def test_a_half_written_record_a_killed_process_left_goes_at_the_next_add_or_del(ipam_api: IpamScene) -> None:
    """Every write happens under the directory's lock, so a temp file found while holding
    it is a killed writer's: the next ADD in that directory removes it, and so does any
    DEL (which may be the last call a runtime makes after the crash)."""
    conf = ipam_api.conf(nodeName="node-1")
    cid = new_container()
    ipam_api.add(conf, container_id=cid)
    [pool_dir] = [path for path in ipam_api.data_dir.glob("node-1/*") if path.is_dir()]
    (pool_dir / ".tmp-killed1").write_text("{")
    ipam_api.add(conf, container_id=new_container())
    assert not list(pool_dir.glob(".tmp-*"))
    (pool_dir / ".tmp-killed2").write_text("{")
    ipam_api.call("DEL", conf, container_id=new_container())  # a sandbox with no record here
    assert not list(pool_dir.glob(".tmp-*"))
