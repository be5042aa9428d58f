"""Fixtures for the netns lane: throwaway namespaces, a stand-in uplink, and a host guard.

Every test here runs plugins and netlink calls inside namespaces it made (`host_ns`
plays the node, `container_ns` the pod sandbox) and never creates anything in the real
host namespace. The autouse `host_unchanged` fixture proves it: it snapshots the host's
links, addresses and routes (as `ip -j` reports them) before each test and fails the
test, saying what changed, if they differ afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from delegates.netlink import links, netns


def ip_json(*args: str, ns: str | None = None) -> Any:
    """`ip -j ARGS` (in namespace path or name `ns`), parsed; the kernel's view, not ours."""
    prefix = ["ip"] + (["-n", os.path.basename(ns)] if ns else [])
    out = subprocess.run([*prefix, "-j", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else []


def ns_name(path: str) -> str:
    """The name of a namespace made by these fixtures, as `ip netns` knows it."""
    return os.path.basename(path)


def _host_snapshot() -> dict[str, set[tuple[Any, ...]]]:
    link_rows = {
        (
            link["ifname"],
            link["ifindex"],
            link.get("address"),
            link.get("mtu"),
            tuple(sorted(link.get("flags", []))),
            link.get("master"),
        )
        for link in ip_json("link", "show")
    }
    addr_rows = {
        (link["ifname"], info["family"], info["local"], info["prefixlen"], info.get("scope"))
        for link in ip_json("addr", "show")
        for info in link.get("addr_info", [])
    }
    route_rows = {
        (
            family,
            route.get("type", "unicast"),
            route.get("table", "main"),
            route["dst"],
            route.get("gateway"),
            route.get("dev"),
            route.get("metric"),
            route.get("protocol"),
            route.get("prefsrc"),
        )
        for family in ("-4", "-6")
        for route in ip_json(family, "route", "show", "table", "all")
    }
    return {"links": link_rows, "addresses": addr_rows, "routes": route_rows}


@pytest.fixture(autouse=True)
def host_unchanged() -> Iterator[None]:
    """Fail the test if the host's own links, addresses or routes changed during it."""
    before = _host_snapshot()
    yield
    after = _host_snapshot()
    changes = []
    for kind, rows in before.items():
        gone, new = rows - after[kind], after[kind] - rows
        if gone:
            changes.append(f"host {kind} removed or changed: {sorted(gone, key=repr)}")
        if new:
            changes.append(f"host {kind} added or changed: {sorted(new, key=repr)}")
    assert not changes, "the test touched the host namespace:\n" + "\n".join(changes)


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_ns() -> Iterator[Callable[..., str]]:
    """A factory of throwaway namespaces: `make_ns(prefix="npc-")` returns a path.

    Every namespace it made is removed after the test, pass or fail.
    """
    made: list[str] = []

    def make(prefix: str = "npc-", *, lo_up: bool = False) -> str:
        path = netns.create(_unique(prefix))
        made.append(path)
        if lo_up:
            links.set_up(path, "lo")
        return path

    try:
        yield make
    finally:
        for path in reversed(made):
            netns.remove(ns_name(path))


@pytest.fixture
def container_ns(make_ns: Callable[..., str]) -> str:
    """A throwaway namespace playing the pod sandbox (`npc-<hex>`); yields its path."""
    return make_ns("npc-")


@pytest.fixture
def host_ns(make_ns: Callable[..., str]) -> str:
    """A throwaway namespace playing the node's root namespace (`nph-<hex>`), `lo` up.

    Run plugin executables in it with `ip netns exec <basename> ...`, or netlink work
    with `netns.run(host_ns, ...)`.
    """
    return make_ns("nph-", lo_up=True)


@dataclasses.dataclass(frozen=True)
class Uplink:
    """A veth standing in for a node NIC: `name` in `host_ns`, `wire_name` in `wire_ns`."""

    name: str
    host_ns: str
    wire_name: str
    wire_ns: str


@pytest.fixture
def uplink(host_ns: str, make_ns: Callable[..., str]) -> Uplink:
    """A macvlan/ipvlan master in `host_ns`: `upl-<hex>`, its peer in a "wire" namespace.

    Both ends are up. Yields names and namespace paths (an `Uplink`).
    """
    wire_ns = make_ns("npw-", lo_up=True)
    name = f"upl-{uuid.uuid4().hex[:8]}"
    links.create_veth(host_name=name, peer_name="wire0", peer_netns=wire_ns, host_netns=host_ns, peer_up=True)
    return Uplink(name=name, host_ns=host_ns, wire_name="wire0", wire_ns=wire_ns)


from tests.netns.nodetree import bare_node  # noqa: E402,F401  (one release build per session)
