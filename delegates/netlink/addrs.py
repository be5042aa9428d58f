"""Addresses: add, list and delete the IP addresses of one link in a namespace.

Addresses are `ipaddress` interfaces in and out (`IPv4Interface("10.1.2.3/24")`).
Adding an address that is there and deleting one that is not both succeed, so ADD and
DEL can be retried. pyroute2 keywords stay in this module.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from delegates.netlink import _codec as c
from delegates.netlink import _conn, errors

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
    family = _family(address)
    with _conn.using(netns) as conn:
        index = _index(conn, ifname, op=op)
        flags = _IFA_F_NODAD if nodad and isinstance(address, ipaddress.IPv6Interface) else 0
        body = c.ifaddr(family=family, prefixlen=address.network.prefixlen, index=index, flags=flags)
        body += c.ip(c.IFA_LOCAL, str(address.ip), family) + c.ip(c.IFA_ADDRESS, str(address.ip), family)
        if isinstance(address, ipaddress.IPv4Interface) and address.network.prefixlen < 31:
            body += c.ip(c.IFA_BROADCAST, str(address.network.broadcast_address), family)
        if flags:
            body += c.u32(c.IFA_FLAGS, flags)
        try:
            conn.request(c.RTM_NEWADDR, c.NLM_F_CREATE | c.NLM_F_EXCL | c.NLM_F_ACK, body)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise _conn.failure(exc, op=op, target=ifname) from exc


def _index(conn: _conn.Conn, ifname: str, *, op: str) -> int:
    """The ifindex of `ifname` through the request's socket; `LinkNotFound` if missing."""
    body = c.ifinfo() + c.string(c.IFLA_IFNAME, ifname) + c.u32(c.IFLA_EXT_MASK, c.RTEXT_FILTER_SKIP_STATS)
    try:
        answers = conn.request(c.RTM_GETLINK, 0, body)
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.EINVAL, errno.ERANGE):
            raise errors.LinkNotFound(op, ifname) from exc
        raise _conn.failure(exc, op=op, target=ifname) from exc
    if not answers:
        raise errors.LinkNotFound(op, ifname)
    return c.decode_ifinfo(answers[0])[0]


def list_addrs(netns: str | None, ifname: str, *, family: int | None = None, all_scopes: bool = False) -> list[Address]:
    """The addresses of link `ifname`, IPv4 first, in kernel order within a family.

    `family` is 4 or 6 (or `socket.AF_INET`/`AF_INET6`); None means both. By default only
    global-scope addresses are listed: no IPv6 link-local (fe80::/64), no 127.0.0.1;
    `all_scopes` lists every address. Raises `LinkNotFound` if `ifname` does not exist.
    One RTM_GETADDR dump on the request's socket (ADD lists addresses on its hot path).
    """
    wanted = None if family is None else _FAMILIES[family]
    op = "list addresses of"
    with _conn.using(netns) as conn:
        index = _index(conn, ifname, op=op)
        try:
            answers = conn.request(c.RTM_GETADDR, c.NLM_F_DUMP, c.ifaddr(family=wanted or 0, prefixlen=0, index=0))
        except OSError as exc:
            raise _conn.failure(exc, op=op, target=ifname) from exc
    found: list[Address] = []
    for payload in answers:
        msg_family, prefixlen, scope, msg_index, attrs = c.decode_ifaddr(payload)
        if msg_index != index or (wanted is not None and msg_family != wanted):
            continue
        if not all_scopes and scope != _RT_SCOPE_UNIVERSE:
            continue
        # IFA_LOCAL is the local end; IFA_ADDRESS is the peer on point-to-point links
        raw = attrs.get(c.IFA_LOCAL) or attrs.get(c.IFA_ADDRESS)
        if raw is None or msg_family not in (socket.AF_INET, socket.AF_INET6):
            continue
        found.append(ipaddress.ip_interface(f"{socket.inet_ntop(msg_family, bytes(raw))}/{prefixlen}"))
    return sorted(found, key=lambda address: address.version)


def delete(netns: str | None, ifname: str, address: Address) -> None:
    """Remove `address` from `ifname`; an address, link or namespace already gone is success."""
    op = f"delete address {address} from"
    family = _family(address)
    try:
        with _conn.using(netns) as conn:
            try:
                index = _index(conn, ifname, op=op)
            except errors.LinkNotFound:
                return
            body = c.ifaddr(family=family, prefixlen=address.network.prefixlen, index=index)
            body += c.ip(c.IFA_LOCAL, str(address.ip), family) + c.ip(c.IFA_ADDRESS, str(address.ip), family)
            try:
                conn.request(c.RTM_DELADDR, c.NLM_F_ACK, body)
            except OSError as exc:
                if exc.errno not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                    raise _conn.failure(exc, op=op, target=ifname) from exc
    except errors.NetnsNotFound:
        return


def _family(address: Address) -> int:
    return socket.AF_INET if address.version == 4 else socket.AF_INET6
