"""Pools and blocks: the names, shapes and arithmetic of netplex-ipam's API objects.

- An `IPPool` (ipam.netplex.io/v1alpha1, cluster-scoped) per (network_name, subnet):
  spec.network, spec.subnet, spec.blockSize. It fixes the block size for every node.
- An `IPBlock` per block a node owns: spec.pool, spec.cidr, spec.node, labelled with pool
  and node so a node lists its own with one request. Its name is derived from the block's
  CIDR, so claiming a block is a plain create, and the API server's AlreadyExists (409)
  is the arbiter between nodes: no lock, no leader, no read-modify-write of a shared object.
- The NPWG `IPAMClaim` (k8s.cni.cncf.io/v1alpha1, namespaced) and core nodes and pods,
  which the reclaimer reads.

No I/O here."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterator
from typing import Any

from cni.result import IPAddress, IPNetwork
from delegates.ipam.cluster.config import PoolRange
from delegates.ipam.cluster.kubeapi import Resource

GROUP = "ipam.netplex.io"
VERSION = "v1alpha1"
POOLS = Resource(GROUP, VERSION, "ippools", namespaced=False)
BLOCKS = Resource(GROUP, VERSION, "ipblocks", namespaced=False)
CLAIMS = Resource("k8s.cni.cncf.io", "v1alpha1", "ipamclaims", namespaced=True)
NODES = Resource("", "v1", "nodes", namespaced=False)
PODS = Resource("", "v1", "pods", namespaced=True)
POOL_LABEL = f"{GROUP}/pool"
NODE_LABEL = f"{GROUP}/node"
_UNSAFE = re.compile(r"[^a-z0-9.-]")  # one for one: distinct CIDRs keep distinct names
MAX_NAME = 200


def pool_name(network_name: str, subnet: IPNetwork) -> str:
    """`10.1.0.0-24`, or `<network_name>.10.1.0.0-24` (IPv6 colons become dashes)."""
    text = _UNSAFE.sub("-", f"{network_name.lower()}.{subnet}" if network_name else str(subnet)).strip("-.")
    return _bounded(text)


def block_name(pool: str, block: IPNetwork) -> str:
    return _bounded(f"{pool}.{_UNSAFE.sub('-', str(block))}".strip("-."))


def label_value(text: str) -> str:
    """A label value (63 characters at most) for a pool or node name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return cleaned if len(cleaned) <= 63 else hashlib.sha256(text.encode()).hexdigest()[:40]


def block_count(pool_range: PoolRange) -> int:
    return 1 << (pool_range.block_prefix - pool_range.subnet.prefixlen)


def block_at(pool_range: PoolRange, index: int) -> IPNetwork:
    size = 1 << (pool_range.subnet.max_prefixlen - pool_range.block_prefix)
    base = int(pool_range.subnet.network_address) + index * size
    return ipaddress.ip_network((base, pool_range.block_prefix))


def block_of(pool_range: PoolRange, ip: IPAddress) -> IPNetwork:
    return ipaddress.ip_network((ip, pool_range.block_prefix), strict=False)


def candidate_blocks(pool_range: PoolRange, node: str) -> Iterator[IPNetwork]:
    """The blocks that hold addresses of the range, starting at one picked by the node's
    name (so nodes rarely race for the same block) and wrapping round."""
    size = 1 << (pool_range.subnet.max_prefixlen - pool_range.block_prefix)
    base = int(pool_range.subnet.network_address)
    low = (int(pool_range.start) - base) // size
    high = (int(pool_range.end) - base) // size
    span = high - low + 1
    offset = int.from_bytes(hashlib.sha256(node.encode()).digest()[:8], "big") % span
    for step in range(span):
        yield block_at(pool_range, low + (offset + step) % span)


def addresses(pool_range: PoolRange, block: IPNetwork) -> Iterator[IPAddress]:
    """The allocatable addresses of `block`, in order."""
    low = max(int(block.network_address), int(pool_range.start))
    high = min(int(block.broadcast_address), int(pool_range.end))
    for value in range(low, high + 1):
        ip = ipaddress.ip_address(value)
        if pool_range.allocatable(ip):
            yield ip


def pool_object(name: str, pool_range: PoolRange, network_name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {"network": network_name, "subnet": str(pool_range.subnet), "blockSize": pool_range.block_prefix},
    }


def block_object(pool: str, block: IPNetwork, node: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "IPBlock",
        "metadata": {
            "name": block_name(pool, block),
            "labels": {POOL_LABEL: label_value(pool), NODE_LABEL: label_value(node)},
        },
        "spec": {"pool": pool, "cidr": str(block), "node": node},
    }


def block_selector(pool: str, node: str = "") -> str:
    selector = f"{POOL_LABEL}={label_value(pool)}"
    return selector + (f",{NODE_LABEL}={label_value(node)}" if node else "")


def owner(block: dict[str, Any]) -> str:
    spec = block.get("spec")
    return str(spec.get("node", "")) if isinstance(spec, dict) else ""


def cidr(block: dict[str, Any]) -> IPNetwork | None:
    spec = block.get("spec")
    try:
        return ipaddress.ip_network(str(spec.get("cidr"))) if isinstance(spec, dict) else None
    except ValueError:
        return None


def _bounded(text: str) -> str:
    if len(text) <= MAX_NAME:
        return text
    return f"{text[: MAX_NAME - 17]}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
