"""static IPAM: the addresses, routes and DNS written in the config, nothing stored.

Keys (reference plugins/ipam/static): `addresses` (list of {`address`: CIDR with the host
bits, `gateway`}), `routes`, `dns`. The runtime may add or replace addresses:
CNI_ARGS `IP` (comma-separated CIDRs, appended) and `GATEWAY` (comma-separated; each sets
the gateway of every address whose subnet contains it); then `args.cni.ips` replaces the
list, and `runtimeConfig.ips` (capability `ips`) replaces it again.

DEL and GC have nothing to release and succeed. CHECK validates the config and, given a
prevResult, wants every configured address in it (with its gateway, when one is set).
Errors name the key: 7 for the config, 4 for CNI_ARGS.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from typing import Any

from cni import skel
from cni.config import NetConf, load_conf
from cni.errors import CniError, Code
from cni.result import DNS, IPAddress, IPConfig, IPInterface, Result, Route
from delegates.ipam import hostlocal_config

__all__ = ["PLUGIN", "StaticConfig", "cmd_add", "cmd_check", "cmd_del", "cmd_gc", "cmd_status", "load", "main"]


@dataclasses.dataclass(frozen=True)
class StaticAddress:
    address: IPInterface
    gateway: IPAddress | None
    where: str


@dataclasses.dataclass(frozen=True)
class StaticConfig:
    cni_version: str
    addresses: tuple[StaticAddress, ...]
    routes: tuple[Route, ...]
    dns: DNS


def load(stdin: bytes, args: skel.CmdArgs) -> StaticConfig:
    """The validated static config with the runtime's overrides applied."""
    conf = load_conf(NetConf, stdin, casefold=True)
    if conf.ipam is None:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "ipam: missing IPAM configuration")
    ipam = conf.ipam
    addresses = _addresses(ipam.get("addresses"))
    env = args.cni_args
    for item in _comma_list(env.get("IP", "")):
        addresses.append(
            StaticAddress(_parse_cidr(item, where="CNI_ARGS IP", code=Code.INVALID_ENVIRONMENT), None, "CNI_ARGS IP")
        )
    for item in _comma_list(env.get("GATEWAY", "")):
        gateway = _parse_ip(item, where="CNI_ARGS GATEWAY", code=Code.INVALID_ENVIRONMENT)
        addresses = [dataclasses.replace(a, gateway=gateway) if gateway in a.address.network else a for a in addresses]
    cni_args = (conf.args or {}).get("cni")
    if isinstance(cni_args, Mapping) and cni_args.get("ips"):
        addresses = _override(cni_args["ips"], where="args.cni.ips")
    if conf.runtime_config.get("ips"):
        addresses = _override(conf.runtime_config["ips"], where="runtimeConfig.ips")
    return StaticConfig(
        cni_version=conf.version,
        addresses=tuple(addresses),
        routes=hostlocal_config.parse_routes(ipam.get("routes"), where="ipam.routes"),
        dns=hostlocal_config.parse_dns(ipam.get("dns")),
    )


def cmd_add(args: skel.CmdArgs) -> Result:
    conf = load(args.stdin, args)
    ips = [IPConfig(address=a.address, gateway=a.gateway) for a in conf.addresses]
    return Result(cni_version=conf.cni_version, ips=ips, routes=list(conf.routes), dns=conf.dns)


def cmd_del(args: skel.CmdArgs) -> None:
    """Nothing was allocated, so nothing to release."""


def cmd_check(args: skel.CmdArgs) -> None:
    conf = load(args.stdin, args)
    previous = load_conf(NetConf, args.stdin, casefold=True).previous_result()
    if previous is None:
        return
    for wanted in conf.addresses:
        found = [ip for ip in previous.ips if ip.address.ip == wanted.address.ip]
        if not found:
            raise CniError(Code.INTERNAL, f"static: {wanted.address} ({wanted.where}) is missing from prevResult")
        if wanted.gateway is not None and all(ip.gateway != wanted.gateway for ip in found):
            raise CniError(
                Code.INTERNAL,
                f"static: {wanted.address} ({wanted.where}) has gateway {found[0].gateway} in prevResult, "
                f"want {wanted.gateway}",
            )


def cmd_status(args: skel.CmdArgs) -> None:
    load(args.stdin, args)


def cmd_gc(args: skel.CmdArgs) -> None:
    """Nothing is stored, so nothing to collect."""


PLUGIN = skel.Plugin(add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc, about="static")


def main() -> int:
    return skel.run(PLUGIN)


def _addresses(raw: Any) -> list[StaticAddress]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CniError(Code.INVALID_NETWORK_CONFIG, "ipam.addresses: must be a list of addresses")
    found: list[StaticAddress] = []
    for index, item in enumerate(raw):
        where = f"ipam.addresses.{index}"
        if not isinstance(item, Mapping):
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: must be an object with an address")
        address = _parse_cidr(item.get("address"), where=f"{where}.address", code=Code.INVALID_NETWORK_CONFIG)
        gateway = None
        if item.get("gateway") not in (None, ""):
            gateway = _parse_ip(item["gateway"], where=f"{where}.gateway", code=Code.INVALID_NETWORK_CONFIG)
            if gateway.version != address.version:
                raise CniError(
                    Code.INVALID_NETWORK_CONFIG, f"{where}.gateway: {gateway} is not an IPv{address.version} address"
                )
        found.append(StaticAddress(address, gateway, where))
    return found


def _override(raw: Any, *, where: str) -> list[StaticAddress]:
    if not isinstance(raw, list):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: must be a list of CIDR strings")
    return [
        StaticAddress(
            _parse_cidr(item, where=f"{where}.{index}", code=Code.INVALID_NETWORK_CONFIG), None, f"{where}.{index}"
        )
        for index, item in enumerate(raw)
    ]


def _comma_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _parse_cidr(value: Any, *, where: str, code: int) -> IPInterface:
    if not isinstance(value, str) or not value:
        raise CniError(code, f"{where}: missing address (want a CIDR such as 10.1.2.3/24)")
    if "/" not in value:
        raise CniError(code, f"{where}: invalid CIDR {value!r}: missing prefix length")
    try:
        address = ipaddress.ip_interface(value.strip())
    except ValueError as exc:
        raise CniError(code, f"{where}: invalid CIDR {value!r}") from exc
    return address


def _parse_ip(value: Any, *, where: str, code: int) -> IPAddress:
    if not isinstance(value, str):
        raise CniError(code, f"{where}: must be an IP address string")
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError as exc:
        raise CniError(code, f"{where}: invalid IP address {value!r}") from exc
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
