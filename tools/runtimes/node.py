"""The throwaway "node": a network namespace the runtime daemon and its CNI plugins run in.

containerd and podman run the CNI plugin in their own network namespace, so a bridge
delegate creates its bridge there. Started under `nsenter --net=<node>` (network
namespace only: mounts stay shared, so the runtime's netns bind mounts and sockets stay
visible to the tests), every bridge, veth and route the lanes make lives in the node
and goes with it; the host's own interfaces are never touched.

Standard library only; `ip` and `nsenter` do the work.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import uuid
from collections.abc import Sequence
from typing import Any

RUN_DIR = "/run/netns"


@dataclasses.dataclass(frozen=True)
class Node:
    """A named network namespace (`ip netns add`); `name` is unique per lane."""

    name: str

    @property
    def path(self) -> str:
        return f"{RUN_DIR}/{self.name}"

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the node's network namespace."""
        return ["nsenter", f"--net={self.path}", *argv]

    def links(self) -> list[dict[str, Any]]:
        """The node's links as `ip -j link` reports them."""
        return ip_json("-n", self.name, "link", "show")


def create(prefix: str = "nprt") -> Node:
    """A new namespace named `<prefix>-<hex>` with its loopback up."""
    node = Node(f"{prefix}-{uuid.uuid4().hex[:10]}")
    subprocess.run(["ip", "netns", "add", node.name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", node.name, "link", "set", "lo", "up"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        remove(node)
        raise
    return node


def remove(node: Node) -> None:
    """Delete the namespace; its bridges and veths go with it. Missing is fine."""
    subprocess.run(["ip", "netns", "delete", node.name], check=False, capture_output=True)


def ip_json(*args: str) -> list[dict[str, Any]]:
    """`ip -j ARGS`, parsed (an empty answer is an empty list)."""
    out = subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True).stdout
    parsed: list[dict[str, Any]] = json.loads(out) if out.strip() else []
    return parsed


def netns_addresses(netns_path: str) -> dict[str, list[str]]:
    """Interface name -> its addresses (`a.b.c.d/len`, link-local IPv6 left out) inside the
    network namespace at `netns_path`, as the kernel reports them."""
    out = subprocess.run(
        ["nsenter", f"--net={netns_path}", "ip", "-j", "addr", "show"],
        check=True, capture_output=True, text=True,
    ).stdout
    found: dict[str, list[str]] = {}
    for link in json.loads(out) if out.strip() else []:
        found[link["ifname"]] = [
            f"{info['local']}/{info['prefixlen']}"
            for info in link.get("addr_info", [])
            if info.get("scope") != "link"
        ]
    return found
