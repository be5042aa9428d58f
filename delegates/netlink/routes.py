"""Routes: add, replace, list and delete routes in a namespace; find the default route's link.

`Route` is a frozen value with `ipaddress` fields; pyroute2 keywords stay in this module.
Adding a route that exists and deleting one that does not both succeed.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import TYPE_CHECKING, Any

import msgspec

from delegates.netlink import _codec as c
from delegates.netlink import _conn, addrs, errors
from delegates.netlink import netns as _netns

if TYPE_CHECKING:
    from pyroute2 import IPRoute

__all__ = ["MAIN_TABLE", "Route", "add", "default_route_ifname", "delete", "list_routes", "replace"]

MAIN_TABLE = 254

_RTN_UNICAST = 1
_RTPROT_BOOT = 3  # what `ip route add` uses
_RT_SCOPE_UNIVERSE = 0
_RT_SCOPE_LINK = 253
_RT_SCOPE_NOWHERE = 255
_RTNH_F_ONLINK = 0x4
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6, socket.AF_INET: socket.AF_INET, socket.AF_INET6: socket.AF_INET6}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class Route(msgspec.Struct, frozen=True):
    """A unicast route. None means "kernel default" when adding and "unknown" when listed.

    `scope` is the rtnetlink scope number (0 universe, 253 link, 254 host); adding an IPv4
    route without gateway and scope uses link scope, as `ip route add` does. `src` is the
    preferred source address; `onlink` lets the gateway sit outside every connected
    subnet. `table` None when adding means main.
    """

    dst: Network
    gw: IP | None = None
    ifname: str | None = None
    metric: int | None = None
    table: int | None = None
    scope: int | None = None
    mtu: int | None = None
    advmss: int | None = None
    src: IP | None = None
    onlink: bool = False

    @property
    def is_default(self) -> bool:
        """True for 0.0.0.0/0 and ::/0."""
        return self.dst.prefixlen == 0


def add(netns: str | None, route: Route) -> None:
    """Add `route`; one that already exists (same key) is success."""
    _modify(netns, route, "add", ok=(errno.EEXIST,))


def replace(netns: str | None, route: Route) -> None:
    """Add `route`, or replace the existing route with the same destination, table, metric."""
    _modify(netns, route, "replace", ok=())


def delete(netns: str | None, route: Route) -> None:
    """Delete `route`; one already gone (or whose link or namespace is gone) is success."""
    try:
        _modify(netns, route, "del", ok=(errno.ESRCH, errno.ENOENT, errno.ENODEV))
    except (errors.LinkNotFound, errors.NetnsNotFound):
        return


def _modify(netns: str | None, route: Route, command: str, *, ok: tuple[int, ...]) -> None:
    verb = {"add": "add", "replace": "replace", "del": "delete"}[command]
    op = f"{verb} route"
    target = (
        str(route.dst) + (f" via {route.gw}" if route.gw else "") + (f" dev {route.ifname}" if route.ifname else "")
    )
    with _conn.using(netns) as conn:
        kind, flags, body = _request(conn, route, command=command, op=op)
        try:
            conn.request(kind, flags, body)
        except OSError as exc:
            if exc.errno not in ok:
                raise errors.NetlinkFailure(op, target, exc.errno or 0) from exc


def _request(conn: _conn.Conn, route: Route, *, command: str, op: str) -> tuple[int, int, bytes]:
    """(message type, flags, body) of the RTM_NEWROUTE/RTM_DELROUTE `ip route` would send."""
    family = socket.AF_INET if route.dst.version == 4 else socket.AF_INET6
    table = route.table if route.table is not None else MAIN_TABLE
    if command != "del":
        scope = route.scope
        if scope is None:
            scope = _RT_SCOPE_LINK if family == socket.AF_INET and route.gw is None else _RT_SCOPE_UNIVERSE
        proto, kind = _RTPROT_BOOT, _RTN_UNICAST
        flags = c.NLM_F_ACK | c.NLM_F_CREATE | (c.NLM_F_REPLACE if command == "replace" else c.NLM_F_EXCL)
        message = c.RTM_NEWROUTE
    else:  # RT_SCOPE_NOWHERE matches a route of any scope, as `ip route del` sends it
        scope = route.scope if route.scope is not None else _RT_SCOPE_NOWHERE
        proto, kind = 0, 0
        flags = c.NLM_F_ACK
        message = c.RTM_DELROUTE
    body = c.rtmsg(
        family=family, dst_len=route.dst.prefixlen, table=table, proto=proto, scope=scope, kind=kind,
        flags=_RTNH_F_ONLINK if route.onlink else 0,
    )
    body += c.u32(c.RTA_TABLE, table)
    if route.dst.prefixlen:
        body += c.ip(c.RTA_DST, str(route.dst.network_address), family)
    if route.gw is not None:
        body += c.ip(c.RTA_GATEWAY, str(route.gw), _family(route.gw))
    if route.ifname is not None:
        body += c.u32(c.RTA_OIF, addrs._index(conn, route.ifname, op=op))
    if route.metric is not None:
        body += c.u32(c.RTA_PRIORITY, route.metric)
    if route.src is not None:
        body += c.ip(c.RTA_PREFSRC, str(route.src), _family(route.src))
    metrics = b""
    if route.mtu is not None:
        metrics += c.u32(c.RTAX_MTU, route.mtu)
    if route.advmss is not None:
        metrics += c.u32(c.RTAX_ADVMSS, route.advmss)
    if metrics and command != "del":
        body += c.attr(c.RTA_METRICS, metrics)
    return message, flags, body


def _family(ip: IP) -> int:
    return socket.AF_INET if ip.version == 4 else socket.AF_INET6


def list_routes(
    netns: str | None, *, family: int | None = None, ifname: str | None = None, table: int | None = MAIN_TABLE
) -> list[Route]:
    """The unicast routes of `table` (None: every table), optionally of one family/link.

    `family` is 4 or 6 (or `socket.AF_INET`/`AF_INET6`). Multipath routes are listed with
    their first next hop. Raises `LinkNotFound` if `ifname` is given and does not exist.
    """
    families = [socket.AF_INET, socket.AF_INET6] if family is None else [_FAMILIES[family]]

    from delegates.netlink import _nl

    def read(ipr: IPRoute) -> list[Route]:
        index = _nl.require_index(ipr, ifname, op="list routes of") if ifname else None
        names = {link["index"]: link.get("IFLA_IFNAME") for link in ipr.link("dump")}
        found: list[Route] = []
        with _nl.translated("list routes in", netns or "the current namespace"):
            for fam in families:
                for msg in ipr.route("dump", family=fam):
                    route = _to_route(msg, names)
                    if route is None or (table is not None and route.table != table):
                        continue
                    if index is not None and route.ifname != ifname:
                        continue
                    found.append(route)
        return found

    return _netns.run(netns, read)


def _to_route(msg: Any, names: dict[int, str]) -> Route | None:
    if msg["type"] != _RTN_UNICAST:
        return None
    family = msg["family"]
    dst = msg.get("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
    oif = msg.get("RTA_OIF")
    gateway = msg.get("RTA_GATEWAY")
    multipath = msg.get("RTA_MULTIPATH")
    if oif is None and gateway is None and multipath:
        first = multipath[0]
        oif = first["oif"]
        gateway = first.get("RTA_GATEWAY")
    metrics = msg.get("RTA_METRICS")
    mtu = advmss = None
    if metrics is not None:
        mtu = metrics.get("RTAX_MTU")
        advmss = metrics.get("RTAX_ADVMSS")
    src = msg.get("RTA_PREFSRC")
    return Route(
        dst=ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False),
        gw=ipaddress.ip_address(gateway) if gateway else None,
        ifname=names.get(oif) if oif is not None else None,
        metric=msg.get("RTA_PRIORITY"),
        table=msg.get("RTA_TABLE") or msg["table"],
        scope=msg["scope"],
        mtu=mtu,
        advmss=advmss,
        src=ipaddress.ip_address(src) if src else None,
        onlink=bool(msg["flags"] & _RTNH_F_ONLINK),
    )


def default_route_ifname(netns: str | None = None) -> str | None:
    """The link of the main table's IPv4 default route (lowest metric), else IPv6's, else None."""
    routes = list_routes(netns)
    for version in (4, 6):
        defaults = [
            route for route in routes if route.dst.version == version and route.is_default and route.ifname is not None
        ]
        if defaults:
            best = min(defaults, key=lambda route: route.metric or 0)
            return best.ifname
    return None
