"""Gateway handling for the bridge delegate, as the reference plugin does it.

`plan` turns the IPAM result into the attachment's result: every IP points at the
container interface (index 2), `isGateway` fills a missing gateway with the subnet's first
address, `isDefaultGateway` adds a default route per family unless IPAM gave one. The
gateway addresses then go on the bridge (`ensure_addresses`), or, with `vlan`, on a
`<bridge>.<vlan>` veth whose peer is an access port of that VLAN (`ensure_vlan_interface`).
Both are shared by every pod of the network and are never removed, like the bridge.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import msgspec

from cni.errors import CniError, Code
from cni.result import Interface, IPConfig, Result, Route
from delegates import common
from delegates.bridge.config import BridgeConf
from delegates.netlink import addrs, links

CONTAINER_INDEX = 2  # interfaces: [bridge, host veth, container veth]
_HOST_NS = "/proc/self/ns/net"  # the plugin's own namespace: the node's

Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class Plan(msgspec.Struct, frozen=True):
    """The result to return, and the addresses the bridge (or VLAN interface) must carry."""

    result: Result
    gateways: tuple[Address, ...]

    def families(self) -> set[int]:
        return {gateway.version for gateway in self.gateways}


def plan(allocated: Result, conf: BridgeConf, interfaces: Sequence[Interface]) -> Plan:
    """The attachment's result from IPAM's (see the module docstring)."""
    ips: list[IPConfig] = []
    routes = list(allocated.routes)
    gateways: list[Address] = []
    for ip in allocated.ips:
        gateway = ip.gateway
        if gateway is None and conf.gateway_mode:
            gateway = ip.address.network.network_address + 1
        if conf.is_default_gateway and not _has_default(routes, ip.address.version):
            routes.append(Route(dst=_default_net(ip.address.version), gw=gateway))
        if conf.gateway_mode and gateway is not None:
            gateways.append(ipaddress.ip_interface(f"{gateway}/{ip.address.network.prefixlen}"))
        ips.append(IPConfig(address=ip.address, gateway=gateway, interface=CONTAINER_INDEX))
    dns = conf.dns if conf.dns is not None and not conf.dns.is_empty() else allocated.dns
    result = Result(
        cni_version=conf.cni_version or allocated.cni_version,
        interfaces=list(interfaces),
        ips=ips,
        routes=routes,
        dns=dns,
    )
    return Plan(result=result, gateways=tuple(dict.fromkeys(gateways)))


def _default_net(version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")


def _has_default(routes: Sequence[Route], version: int) -> bool:
    return any(route.gw is not None and route.dst == _default_net(version) for route in routes)


def ensure_addresses(ifname: str, gateways: Sequence[Address], *, force: bool) -> None:
    """Put the gateway addresses on `ifname` (the bridge or its VLAN interface).

    Another IPv4 address, or an IPv6 address whose subnet overlaps, is a conflict: with
    `forceAddress` it is replaced, otherwise the ADD fails with error 7.
    """
    wanted = set(gateways)
    with common.netlink_errors(f"bridge {ifname!r}"):
        present = addrs.list_addrs(None, ifname)
        for gateway in gateways:
            for other in present:
                if other in wanted or other.version != gateway.version:
                    continue
                if other.version == 6 and not (other.network.overlaps(gateway.network)):
                    continue
                if not force:
                    raise CniError(
                        Code.INVALID_NETWORK_CONFIG,
                        f"isGateway: {ifname!r} already has address {other}, not {gateway} (forceAddress replaces it)",
                    )
                addrs.delete(None, ifname, other)
            addrs.add(None, ifname, gateway, nodad=True)


def vlan_interface_name(bridge: str, vlan: int) -> str:
    """`<bridge>.<vlan>`, the reference plugin's name for a VLAN's gateway interface."""
    name = f"{bridge}.{vlan}"
    if len(name) > 15:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            f"vlan: gateway interface name {name!r} is longer than 15 characters (shorten bridge)",
        )
    return name


def vlan_port_name(bridge: str, vlan: int) -> str:
    """The bridge-side end of the VLAN gateway veth: a fixed name per bridge and VLAN."""
    return common.host_veth_name(f"gateway.{bridge}", str(vlan))


def ensure_vlan_interface(bridge: str, vlan: int, *, mtu: int | None, preserve_default_vlan: bool) -> links.Link:
    """The VLAN gateway interface `<bridge>.<vlan>`, created once: a veth in the node's
    namespace whose peer is an untagged access port of `vlan` on the bridge."""
    name = vlan_interface_name(bridge, vlan)
    port = vlan_port_name(bridge, vlan)
    with common.netlink_errors(f"vlan gateway {name!r}"):
        existing = links.get(None, name)
        if existing is not None:
            return existing
        links.create_veth(host_name=port, peer_name=name, peer_netns=_HOST_NS, mtu=mtu)
        try:
            links.set_master(None, port, bridge)
            set_port_vlans(port, vlan=vlan, trunk=(), preserve_default_vlan=preserve_default_vlan)
            links.set_up(None, name)
            found = links.get(None, name)
        except BaseException:
            links.delete_if_exists(None, port)
            raise
    if found is None:
        raise CniError(Code.INTERNAL, f"vlan gateway {name!r} vanished after it was created")
    return found


def set_port_vlans(port: str, *, vlan: int, trunk: Sequence[int], preserve_default_vlan: bool) -> None:
    """Make `port` an access port of `vlan` (PVID, untagged) and/or a trunk of `trunk`
    (tagged). Without `preserveDefaultVlan` the port first leaves every VLAN it had
    (VLAN 1, which the kernel gives each new port)."""
    if not vlan and not trunk:
        return
    if not preserve_default_vlan:
        for vid, _pvid, _untagged in links.bridge_vlans(None, port):
            links.bridge_vlan_del(None, port, vid)
    for vid in trunk:
        if vid != vlan:
            links.bridge_vlan_add(None, port, vid)
    if vlan:
        links.bridge_vlan_add(None, port, vlan, pvid=True, untagged=True)
