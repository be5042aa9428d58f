"""Addresses: add, list and delete the IP addresses of one link in a namespace.

Addresses are `ipaddress` interfaces in and out (`IPv4Interface("10.1.2.3/24")`).
Adding an address that is there and deleting one that is not both succeed, so ADD and
DEL can be retried. pyroute2 keywords stay in this module.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from delegates.netlink import _nl, errors
from delegates.netlink import netns as _netns

__all__ = ["Address", "add", "delete", "list_addrs"]

Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface

_IFA_F_NODAD = 0x02
_RT_SCOPE_UNIVERSE = 0
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6, socket.AF_INET: socket.AF_INET, socket.AF_INET6: socket.AF_INET6}


def add(netns: str | None, ifname: str, address: Address, *, nodad: bool = False) -> None:
    """Add `address` to link `ifname`; an address already there is success.

    IPv4 addresses get the subnet broadcast (as `ip addr add ... brd +` and the reference
    plugins do). `nodad` skips IPv6 duplicate address detection, so the address is usable
    at once instead of tentative for a second or two.
    """
    op = f"add address {address} to"

    def apply(ipr: IPRoute) -> None:
        index = _nl.require_index(ipr, ifname, op=op)
        request: dict[str, Any] = {
            "index": index,
            "family": _family(address),
            "address": str(address.ip),
            "prefixlen": address.network.prefixlen,
        }
        if isinstance(address, ipaddress.IPv4Interface) and address.network.prefixlen < 31:
            request["broadcast"] = str(address.network.broadcast_address)
        if nodad and isinstance(address, ipaddress.IPv6Interface):
            request["flags"] = _IFA_F_NODAD
        try:
            ipr.addr("add", **request)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise errors.from_errno(exc.code, op=op, target=ifname) from exc

    _netns.run(netns, apply)


def list_addrs(netns: str | None, ifname: str, *, family: int | None = None, all_scopes: bool = False) -> list[Address]:
    """The addresses of link `ifname`, IPv4 first, in kernel order within a family.

    `family` is 4 or 6 (or `socket.AF_INET`/`AF_INET6`); None means both. By default only
    global-scope addresses are listed: no IPv6 link-local (fe80::/64), no 127.0.0.1;
    `all_scopes` lists every address. Raises `LinkNotFound` if `ifname` does not exist.
    """
    wanted = None if family is None else _FAMILIES[family]

    def read(ipr: IPRoute) -> list[Address]:
        index = _nl.require_index(ipr, ifname, op="list addresses of")
        found: list[Address] = []
        with _nl.translated("list addresses of", ifname):
            for msg in ipr.addr("dump", index=index):
                if msg["index"] != index or (wanted is not None and msg["family"] != wanted):
                    continue
                if not all_scopes and msg["scope"] != _RT_SCOPE_UNIVERSE:
                    continue
                # IFA_LOCAL is the local end; IFA_ADDRESS is the peer on point-to-point links
                ip = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
                if ip is None:
                    continue
                found.append(ipaddress.ip_interface(f"{ip}/{msg['prefixlen']}"))
        return sorted(found, key=lambda address: address.version)

    return _netns.run(netns, read)


def delete(netns: str | None, ifname: str, address: Address) -> None:
    """Remove `address` from `ifname`; an address, link or namespace already gone is success."""
    op = f"delete address {address} from"

    def apply(ipr: IPRoute) -> None:
        index = _nl.index_of(ipr, ifname)
        if index is None:
            return
        try:
            ipr.addr(
                "del",
                index=index,
                family=_family(address),
                address=str(address.ip),
                prefixlen=address.network.prefixlen,
            )
        except NetlinkError as exc:
            if exc.code not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                raise errors.from_errno(exc.code, op=op, target=ifname) from exc

    try:
        _netns.run(netns, apply)
    except errors.NetnsNotFound:
        return


def _family(address: Address) -> int:
    return socket.AF_INET if address.version == 4 else socket.AF_INET6
