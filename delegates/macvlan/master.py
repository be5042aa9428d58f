"""The master (lower device) of a macvlan or ipvlan link: which link it is, where it lives,
and whether a requested MTU fits it. Shared by `delegates.macvlan` and `delegates.ipvlan`.

A master lives in the node's namespace (the plugin's own), or in the pod's when the config
says `linkInContainer`. An empty `master` means the link of that namespace's default
route, as the reference plugins read it. Every failure here is error 7 naming `master` or
`mtu`: the config named something this node does not have.
"""

from __future__ import annotations

import msgspec

from cni.errors import CniError, Code
from delegates import common
from delegates.netlink import links, routes

MAX_IFNAME_LENGTH = 15


def check_name(value: str) -> str:
    """`value` if it can name a link (empty: the default); else error 7 naming `master`."""
    if len(value) > MAX_IFNAME_LENGTH or any(char in value for char in "/: \t\n") or value in {".", ".."}:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"master: {value!r} is not a valid interface name")
    return value


class Master(msgspec.Struct, frozen=True):
    """A master link found in `netns` (None: the plugin's own namespace)."""

    name: str
    netns: str | None
    mtu: int


def resolve(name: str, *, pod_netns: str, in_container: bool) -> Master:
    """The master called `name` (empty: the default route's link), in the pod namespace
    when `in_container`, else in ours. Error 7 naming `master` if there is none."""
    where = pod_netns if in_container else None
    place = " in the container namespace" if in_container else ""
    if not name:
        with common.netlink_errors("master: find the default route"):
            found = routes.default_route_ifname(where)
        if found is None:
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"master: not set, and there is no default route{place} to take it from",
            )
        name = found
    with common.netlink_errors(f'master: look up "{name}"'):
        link = links.get(where, name)
    if link is None:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f'master: link "{name}" not found{place}')
    return Master(name=name, netns=where, mtu=link.mtu)


def check_mtu(mtu: int, master: Master) -> None:
    """Error 7 naming `mtu` when `mtu` (0: the kernel's default) exceeds the master's."""
    if mtu > master.mtu:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            f'mtu: {mtu} is larger than the mtu {master.mtu} of master "{master.name}"',
        )
