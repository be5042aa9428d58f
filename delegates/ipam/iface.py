"""Put an IPAM result on the container's interface, and CHECK that it is still there: the
reference plugins' `ipam.ConfigureIface` and the address/route half of their CHECK.

`configure` works in the container namespace, in this order: DAD off for the interface
(`accept_dad=0`) when `nodad`; IPv6 enabled on `lo` and the interface when an IPv6
address comes (`disable_ipv6=0`); link up; every address of `result.ips` whose
`interface` is `iface_index` (others, and those with no index, are for other links); a
wait of up to 10 s for IPv6 duplicate address detection when an IPv6 gateway is used
(skipped under `nodad`, where addresses are never tentative); then every route of
`result.routes` on the interface, through its own `gw` or else the first gateway of its
family among the addresses.

Failures are CniErrors: 3 when the namespace or interface is gone, 999 otherwise (a
netlink refusal, a failed DAD, a CHECK mismatch), each naming the object.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import time
from collections.abc import Iterator

from cni.errors import CniError, Code
from cni.result import IPAddress, IPConfig, Result, Route
from delegates.netlink import addrs, errors, links, netns, routes, sysctl

__all__ = ["SETTLE_TIMEOUT", "check", "configure"]

log = logging.getLogger(__name__)

SETTLE_TIMEOUT = 10.0  # seconds, as the reference's SettleAddresses
_IFA_F_DADFAILED = 0x08
_IFA_F_TENTATIVE = 0x40


def configure(netns_path: str, ifname: str, result: Result, *, iface_index: int, nodad: bool) -> None:
    """Apply the addresses and routes of `result` meant for `iface_index` to `ifname`."""
    ips = _ips_for(result, iface_index)
    with _translated(netns_path, ifname):
        if links.get(netns_path, ifname) is None:
            raise CniError(
                Code.UNKNOWN_CONTAINER, f'failed to configure "{ifname}": no such interface in the container'
            )
        if nodad:
            _try_sysctl(netns_path, f"net/ipv6/conf/{ifname}/accept_dad", "0")
        if any(ip.family == 6 for ip in ips):
            for name in ("lo", ifname):
                _enable_ipv6(netns_path, name)
        links.set_up(netns_path, ifname)
        for ip in ips:
            addrs.add(netns_path, ifname, ip.address, nodad=nodad)
        gateways = _default_gateways(ips)
        if 6 in gateways and not nodad:
            _settle(netns_path, ifname, timeout=SETTLE_TIMEOUT)
        for route in result.routes:
            gateway = route.gw if route.gw is not None else gateways.get(route.dst.version)
            routes.add(netns_path, _kernel_route(route, gateway, ifname))


def check(netns_path: str, ifname: str, result: Result, iface_index: int) -> None:
    """Raise if an address or route of `result` for `iface_index` is missing on `ifname`."""
    ips = _ips_for(result, iface_index)
    with _translated(netns_path, ifname):
        if links.get(netns_path, ifname) is None:
            raise CniError(Code.UNKNOWN_CONTAINER, f'check: interface "{ifname}" is missing from the container')
        present = set(addrs.list_addrs(netns_path, ifname))
        for ip in ips:
            if ip.address not in present:
                raise CniError(Code.INTERNAL, f'check: address {ip.address} is missing on "{ifname}"')
        if not result.routes:
            return
        installed = routes.list_routes(netns_path, ifname=ifname, table=None)
        gateways = _default_gateways(ips)
        for route in result.routes:
            gateway = route.gw if route.gw is not None else gateways.get(route.dst.version)
            table = route.table if route.table is not None else routes.MAIN_TABLE
            if not any(r.dst == route.dst and r.gw == gateway and r.table == table for r in installed):
                via = f" via {gateway}" if gateway is not None else ""
                raise CniError(Code.INTERNAL, f'check: route {route.dst}{via} is missing on "{ifname}"')


def _ips_for(result: Result, iface_index: int) -> list[IPConfig]:
    return [ip for ip in result.ips if ip.interface == iface_index]


def _default_gateways(ips: list[IPConfig]) -> dict[int, IPAddress]:
    """The first gateway of each family, for routes that name none (reference behaviour)."""
    found: dict[int, IPAddress] = {}
    for ip in ips:
        if ip.gateway is not None:
            found.setdefault(ip.gateway.version, ip.gateway)
    return found


def _kernel_route(route: Route, gateway: IPAddress | None, ifname: str) -> routes.Route:
    return routes.Route(
        dst=route.dst,
        gw=gateway,
        ifname=ifname,
        metric=route.priority,
        table=route.table,
        scope=route.scope,
        mtu=route.mtu,
        advmss=route.advmss,
    )


def _enable_ipv6(netns_path: str, name: str) -> None:
    """`disable_ipv6=0` on `name`; a kernel without IPv6 sysctls is left as it is."""
    key = f"net/ipv6/conf/{name}/disable_ipv6"
    try:
        sysctl.set_value(netns_path, key, "0")
    except errors.NetlinkFailure as exc:
        if exc.errno == errno.ENOENT:
            log.warning("cannot enable IPv6 on %s: %s", name, exc)
            return
        raise CniError(Code.INTERNAL, f'failed to enable IPv6 on "{name}": {exc.message}') from exc


def _try_sysctl(netns_path: str, key: str, value: str) -> None:
    # The reference ignores this failure too: without IPv6 there is no DAD to turn off.
    try:
        sysctl.set_value(netns_path, key, value)
    except errors.NetlinkFailure as exc:
        log.debug("cannot set %s=%s: %s", key, value, exc)


def _settle(netns_path: str, ifname: str, *, timeout: float) -> None:
    """Wait until no IPv6 address of `ifname` is tentative; a failed DAD is an error."""
    deadline = time.monotonic() + timeout
    while True:
        flags = netns.call(netns_path, lambda: _inet6_flags(ifname))
        if any(value & _IFA_F_DADFAILED for value in flags.values()):
            failed = ", ".join(str(address) for address, value in flags.items() if value & _IFA_F_DADFAILED)
            raise CniError(Code.INTERNAL, f'duplicate address detected on "{ifname}": {failed}')
        if not any(value & _IFA_F_TENTATIVE for value in flags.values()):
            return
        if time.monotonic() >= deadline:
            log.warning("IPv6 addresses of %s still tentative after %.0fs", ifname, timeout)
            return
        time.sleep(0.1)


def _inet6_flags(ifname: str) -> dict[ipaddress.IPv6Address, int]:
    """Address -> IFA flags of `ifname`, from the calling thread's namespace.

    `/proc/thread-self/net`, not `/proc/self/net`: the latter shows the namespace of the
    process's main thread, not of the worker that entered the container's.
    """
    found: dict[ipaddress.IPv6Address, int] = {}
    try:
        with open("/proc/thread-self/net/if_inet6", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:  # no IPv6 in this kernel
        return found
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[5] == ifname:
            found[ipaddress.IPv6Address(int(fields[0], 16))] = int(fields[4], 16)
    return found


@contextlib.contextmanager
def _translated(netns_path: str, ifname: str) -> Iterator[None]:
    """Netlink failures as CniErrors: 3 for a vanished namespace or link, 999 otherwise."""
    try:
        yield
    except errors.NetnsNotFound as exc:
        raise CniError(Code.UNKNOWN_CONTAINER, str(exc)) from exc
    except errors.LinkNotFound as exc:
        raise CniError(Code.UNKNOWN_CONTAINER, str(exc)) from exc
    except errors.NetlinkFailure as exc:
        raise CniError(Code.INTERNAL, str(exc)) from exc
