"""What netplex reports after an ADD: the NPWG v1.3 network-status list (section 5), the
merged CNI result the runtime gets, and the NPWG `default-route` decision (which
attachment keeps the pod's default route; the caller moves the routes in the kernel and
then rewrites the results with `without_default_route` / `with_default_route`).

Pure functions over attachments and results; no I/O. Attachments are read through the
`Attached` protocol, so both meta.model.Attachment and the cache's entries fit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import msgspec

from cni.errors import CniError, Code
from cni.result import DNS, Interface, IPConfig, Result, Route
from meta.model import DefaultRoute, IPAddress, NetworkSelection

_DEFAULT_V4 = ipaddress.ip_network("0.0.0.0/0")
_DEFAULT_V6 = ipaddress.ip_network("::/0")


class Attached(Protocol):
    """What status building needs of an attachment."""

    @property
    def network(self) -> str: ...

    @property
    def ifname(self) -> str: ...

    @property
    def is_cluster_network(self) -> bool: ...


class Selected(Attached, Protocol):
    @property
    def selection(self) -> NetworkSelection | None: ...


Entry = tuple[Attached, Result | None]


def network_status(
    entries: Sequence[Entry], *, device_info: Mapping[str, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One network-status element per attachment, in plan order (NPWG 5):

    - `name`: `namespace/name`, or the cluster network's name;
    - `interface`, `mac`, `mtu` of the result's first interface with `sandbox` set (host
      interfaces never count); `ips` of that interface without prefix length (IPs that
      name no interface count too, as when no interface is in the sandbox, NPWG 5.3.3.1);
    - `default`: true for the cluster network only (NPWG 5.3.5), always present;
    - `dns` when the result has any; `gateway`: the gateways of the result's default
      routes, only those that have one (never Multus's "<nil>");
    - `device-info` from `device_info`, keyed by the attachment's ifname.

    A missing result still gives a minimal element (name, interface, default)."""
    infos = device_info or {}
    return [_status_element(attachment, result, infos.get(attachment.ifname)) for attachment, result in entries]


def merged_result(
    entries: Sequence[tuple[Attached, Result]], *, mode: Literal["cluster", "all"], cni_version: str
) -> Result:
    """The result the runtime gets: every attachment's interfaces, the cluster network's
    first, with indexes remapped. `ips`, `routes` and `dns` are the cluster network's in
    "cluster" mode; "all" adds every other attachment's IPs, each pointing at its own
    interface (an IP naming none points at the attachment's first sandbox interface)."""
    ordered = sorted(entries, key=lambda entry: not entry[0].is_cluster_network)
    interfaces: list[Interface] = []
    ips: list[IPConfig] = []
    routes: list[Route] = []
    dns = DNS()
    for attachment, result in ordered:
        offset = len(interfaces)
        interfaces.extend(result.interfaces)
        if attachment.is_cluster_network:
            ips.extend(_shifted(ip, offset, fallback=None) for ip in result.ips)
            routes.extend(result.routes)
            dns = result.dns
        elif mode == "all":
            own = _first_sandbox_index(result)
            fallback = offset + own if own is not None else None
            ips.extend(_shifted(ip, offset, fallback=fallback) for ip in result.ips)
    return Result(cni_version=cni_version, interfaces=interfaces, ips=ips, routes=routes, dns=dns)


def default_route_owner(plan: Sequence[Selected]) -> list[DefaultRoute]:
    """The NPWG `default-route` decision, one entry per IP family some element asked
    for (empty: nobody asked, every attachment keeps its routes). Two attachments
    asking for the same family is error 7 (ECMP is not offered, as in Multus).

    `"default-route": []` makes the attachment keep its own default routes of both
    families; naming gateways claims only their families."""
    claims: dict[int, DefaultRoute] = {}
    for index, attachment in enumerate(plan):
        selection = attachment.selection
        if selection is None or selection.default_route is None:
            continue
        wanted: list[tuple[int, IPAddress | None]] = [(gw.version, gw) for gw in selection.default_route]
        if not wanted:
            wanted = [(4, None), (6, None)]
        for family, gateway in wanted:
            earlier = claims.get(family)
            if earlier is not None:
                raise CniError(
                    Code.INVALID_NETWORK_CONFIG,
                    f"default-route: network {attachment.network!r} ({attachment.ifname}) and network "
                    f"{plan[earlier.owner].network!r} ({plan[earlier.owner].ifname}) both ask for the IPv{family} "
                    "default route; only one may have it",
                )
            claims[family] = DefaultRoute(family=family, owner=index, gateway=gateway)
    return [claims[family] for family in sorted(claims)]


def without_default_route(result: Result, *, family: int) -> Result:
    """`result` without its default routes of IP `family` (an attachment that lost them)."""
    kept = [route for route in result.routes if not (_is_default(route) and route.dst.version == family)]
    return msgspec.structs.replace(result, routes=kept)


def with_default_route(result: Result, *, family: int, gateway: IPAddress) -> Result:
    """`result` with its default route of IP `family` going through `gateway`."""
    kept = without_default_route(result, family=family).routes
    dst = _DEFAULT_V4 if family == 4 else _DEFAULT_V6
    return msgspec.structs.replace(result, routes=[*kept, Route(dst=dst, gw=gateway)])


def _status_element(
    attachment: Attached, result: Result | None, info: Mapping[str, Any] | None
) -> dict[str, Any]:
    element: dict[str, Any] = {"name": attachment.network}
    if result is None:
        element["interface"] = attachment.ifname
        element["default"] = attachment.is_cluster_network
        if info:
            element["device-info"] = dict(info)
        return element
    index = _first_sandbox_index(result)
    if index is not None:
        iface = result.interfaces[index]
        element["interface"] = iface.name
    ips = [
        str(ip.address.ip)
        for ip in result.ips
        if ip.interface is None or ip.interface < 0 or (index is not None and ip.interface == index)
    ]
    if ips:
        element["ips"] = ips
    if index is not None:
        iface = result.interfaces[index]
        if iface.mac:
            element["mac"] = iface.mac
        if iface.mtu:
            element["mtu"] = iface.mtu
    element["default"] = attachment.is_cluster_network
    if not result.dns.is_empty():
        element["dns"] = result.dns.to_wire()
    if info:
        element["device-info"] = dict(info)
    gateways = [str(route.gw) for route in result.routes if _is_default(route) and route.gw is not None]
    if gateways:
        element["gateway"] = gateways
    return element


def _first_sandbox_index(result: Result) -> int | None:
    for index, iface in enumerate(result.interfaces):
        if iface.sandbox:
            return index
    return None


def _shifted(ip: IPConfig, offset: int, *, fallback: int | None) -> IPConfig:
    if ip.interface is None or ip.interface < 0:
        return ip if fallback is None else msgspec.structs.replace(ip, interface=fallback)
    return msgspec.structs.replace(ip, interface=ip.interface + offset)


def _is_default(route: Route) -> bool:
    return route.dst.prefixlen == 0
