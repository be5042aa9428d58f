"""host-local's configuration: the `ipam` section of the network config it is handed,
plus the addresses the runtime asks for.

Keys (reference host-local `config.go`): `ranges` (a list of range sets), the legacy
single range `subnet`/`rangeStart`/`rangeEnd`/`gateway` (becomes range set 0),
`rangeFromFile` (one range as JSON, used when no other range is given), `routes`,
`dataDir` (default /var/lib/cni/networks), `resolvConf`. The runtime may prepend range sets
with `runtimeConfig.ipRanges` (capability `ipRanges`) and request addresses with
`runtimeConfig.ips` (capability `ips`), `args.cni.ips` and CNI_ARGS `IP` (comma-separated;
the reference takes one). Requested addresses may carry a prefix (`10.1.2.3/24`), which is
ignored. Unknown CNI_ARGS keys are ignored rather than refused.

Range sets may not overlap each other. Every problem is a CniError naming the key:
7 for the config, 4 for CNI_ARGS.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
from collections.abc import Mapping
from typing import Any

import msgspec

from cni import decode, skel
from cni.config import NetConf, load_conf
from cni.errors import CniError, Code
from cni.result import DNS, IPAddress, Route
from delegates.ipam import hostlocal_ranges as ranges
from delegates.ipam.hostlocal_store import DEFAULT_DATA_DIR

__all__ = [
    "HostLocalConfig",
    "Request",
    "data_dir_of",
    "load",
    "load_ipam_section",
    "parse_resolv_conf",
    "parse_routes",
]


class Request(msgspec.Struct, frozen=True):
    """One address the runtime asked for, and where it asked."""

    ip: IPAddress
    where: str


class HostLocalConfig(msgspec.Struct, frozen=True):
    network: str
    cni_version: str
    range_sets: tuple[ranges.RangeSet, ...]
    routes: tuple[Route, ...]
    data_dir: str
    resolv_conf: str
    requests: tuple[Request, ...]


def load(stdin: bytes, args: skel.CmdArgs) -> HostLocalConfig:
    """The full, validated host-local config for one ADD / CHECK / STATUS."""
    conf = load_conf(NetConf, stdin, casefold=True)
    ipam = load_ipam_section(conf)
    range_sets = _range_sets(conf, ipam)
    for index, first in enumerate(range_sets):
        for later_index, second in enumerate(range_sets[index + 1 :], start=index + 1):
            for a in first:
                for b in second:
                    if a.overlaps(b):
                        raise CniError(
                            Code.INVALID_NETWORK_CONFIG,
                            f"{b.where}: range set {later_index} ({ranges.describe(second)}) overlaps "
                            f"range set {index} ({ranges.describe(first)})",
                        )
    return HostLocalConfig(
        network=conf.name,
        cni_version=conf.version,
        range_sets=range_sets,
        routes=parse_routes(ipam.get("routes"), where="ipam.routes"),
        data_dir=data_dir_of(ipam),
        resolv_conf=_optional_str(ipam, "resolvConf"),
        requests=_requests(conf, args),
    )


def load_ipam_section(conf: NetConf) -> dict[str, Any]:
    if conf.ipam is None:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "ipam: missing IPAM configuration")
    return conf.ipam


def data_dir_of(ipam: Mapping[str, Any]) -> str:
    data_dir = _optional_str(ipam, "dataDir") or DEFAULT_DATA_DIR
    if not data_dir.startswith("/"):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"ipam.dataDir: {data_dir!r} is not an absolute path")
    if "\0" in data_dir:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "ipam.dataDir: holds a NUL character")
    return posixpath.normpath(data_dir)  # "/a/../b" is "/b": ipamRoots are checked on this form


def parse_routes(raw: Any, *, where: str) -> tuple[Route, ...]:
    """`routes` as Route models (`dst` required, `gw` optional)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: must be a list of routes")
    parsed: list[Route] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or "dst" not in item:
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}.{index}.dst: missing route destination")
        parsed.append(decode.decode(Route, item, where=f"{where}.{index}"))
    return tuple(parsed)


def parse_dns(raw: Any, *, where: str = "ipam.dns") -> DNS:
    """An IPAM section's `dns` (absent: none), error 7 naming the field (static and
    netplex-ipam take it as it is; host-local reads a resolv.conf instead)."""
    if raw is None:
        return DNS()
    if not isinstance(raw, Mapping):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: must be an object")
    return decode.decode(DNS, raw, where=where)


def parse_resolv_conf(path: str, *, where: str = "ipam.resolvConf") -> DNS:
    """A resolv.conf as DNS settings: `nameserver`, `domain`, `search`, `options` lines;
    comments (`#`, `;`) and other lines are skipped (reference host-local `dns.go`)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read(1024 * 1024).splitlines()
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"{where}: cannot read {path!r}: {exc.strerror or exc}") from exc
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    domain = ""
    for line in lines:
        fields = line.strip().split()
        if len(fields) < 2 or fields[0].startswith(("#", ";")):
            continue
        keyword, values = fields[0], fields[1:]
        if keyword == "nameserver":
            nameservers.append(values[0])
        elif keyword == "domain":
            domain = values[0]
        elif keyword == "search":
            search.extend(values)
        elif keyword == "options":
            options.extend(values)
    return DNS(nameservers=nameservers, domain=domain, search=search, options=options)


def _range_sets(conf: NetConf, ipam: Mapping[str, Any]) -> tuple[ranges.RangeSet, ...]:
    """runtimeConfig.ipRanges, then the legacy range, then `ranges` (the reference's order,
    which fixes each set's index and so its `last_reserved_ip.<index>` file)."""
    found: list[ranges.RangeSet] = []
    runtime_ranges = conf.runtime_config.get("ipRanges")
    if runtime_ranges is not None:
        found.extend(_range_set_list(runtime_ranges, where="runtimeConfig.ipRanges"))
    if ipam.get("subnet") not in (None, ""):
        legacy = {key: ipam.get(key) for key in ("subnet", "rangeStart", "rangeEnd", "gateway")}
        found.append((ranges.parse_range(legacy, where="ipam"),))
    found.extend(_range_set_list(ipam.get("ranges"), where="ipam.ranges"))
    range_file = _optional_str(ipam, "rangeFromFile")
    if not found and range_file:
        found.append((ranges.parse_range(_read_range_file(range_file), where="ipam.rangeFromFile"),))
    if not found:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "ipam.ranges: no IP ranges specified")
    return tuple(found)


def _range_set_list(raw: Any, *, where: str) -> list[ranges.RangeSet]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: must be a list of range sets")
    return [ranges.parse_range_set(item, where=f"{where}.{index}") for index, item in enumerate(raw)]


def _read_range_file(path: str) -> Any:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read(1024 * 1024))
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"ipam.rangeFromFile: cannot read {path!r}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"ipam.rangeFromFile: {path!r} is not valid JSON") from exc


def _requests(conf: NetConf, args: skel.CmdArgs) -> tuple[Request, ...]:
    """Requested addresses in the reference's order: CNI_ARGS IP, args.cni.ips,
    runtimeConfig.ips; duplicates collapse to the first."""
    found: list[Request] = []
    env_ip = args.cni_args.get("IP", "")
    for item in (part.strip() for part in env_ip.split(",") if part.strip()):
        found.append(Request(_parse_requested(item, where="CNI_ARGS IP", code=Code.INVALID_ENVIRONMENT), "CNI_ARGS IP"))
    cni_args = (conf.args or {}).get("cni")
    if isinstance(cni_args, Mapping):
        found.extend(_request_list(cni_args.get("ips"), where="args.cni.ips"))
    found.extend(_request_list(conf.runtime_config.get("ips"), where="runtimeConfig.ips"))
    unique: dict[IPAddress, Request] = {}
    for request in found:
        unique.setdefault(request.ip, request)
    return tuple(unique.values())


def _request_list(raw: Any, *, where: str) -> list[Request]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: must be a list of IP addresses")
    return [
        Request(_parse_requested(item, where=f"{where}.{index}", code=Code.INVALID_NETWORK_CONFIG), f"{where}.{index}")
        for index, item in enumerate(raw)
    ]


def _parse_requested(value: Any, *, where: str, code: int) -> IPAddress:
    if not isinstance(value, str):
        raise CniError(code, f"{where}: must be an IP address string")
    try:
        ip = ipaddress.ip_interface(value.strip()).ip
    except ValueError as exc:
        raise CniError(code, f"{where}: invalid IP address {value!r}") from exc
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _optional_str(ipam: Mapping[str, Any], key: str) -> str:
    value = ipam.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"ipam.{key}: must be a string")
    return value
