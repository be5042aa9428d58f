"""netplex-ipam's configuration: the `ipam` section, with whereabouts' keys, so a
whereabouts NAD moves by changing `type`.

Keys:
- `range`: a CIDR (`10.1.0.0/24`), or `start-end` inside one (`10.1.0.10-10.1.0.50/24`);
  `range_start`, `range_end` narrow it; `exclude`: CIDRs never handed out; `gateway`.
- `ipRanges`: more ranges (each with `range`, `range_start`, `range_end`, `exclude`),
  e.g. one IPv4 and one IPv6 for dual stack; the result has one address per range.
- `network_name`: pools are per (network_name, subnet), so two NADs naming the same
  subnet share it (as whereabouts) unless their network_name differs.
- `routes`, `dns` (`nameservers`, `domain`, `search`, `options`) as the reference IPAMs.
- `kubernetes.kubeconfig`: how the exec'd plugin reaches the API (in the daemon, the
  daemon's own client is used).
- netplex's own: `block_size` (prefix length of a node's block, default /28 for IPv4 and
  /124 for IPv6; whereabouts' `node_slice_size` is read as the same thing), `nodeName`
  (default $NODE_NAME, then the host name), `dataDir` (default /var/lib/cni/netplex-ipam).
Whereabouts keys that mean nothing here (`log_file`, `leader_*`, `etcd_*`, ...) are ignored.

Every problem is a CniError 7 naming the key (`ipam.ipRanges.1.range`). No I/O but reading
environment and host name."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from collections.abc import Mapping
from typing import Any

from cni import skel
from cni.config import NetConf, load_conf
from cni.errors import CniError, Code
from cni.result import DNS, IPAddress, IPNetwork, Route
from delegates.ipam import hostlocal_config

DEFAULT_DATA_DIR = "/var/lib/cni/netplex-ipam"
CLAIM_ARG = "ipam-claim-reference"  # in args.cni, put there by netplex from the selection element
NODE_NAME_ENV = "NODE_NAME"
_DEFAULT_BLOCK = {4: 28, 6: 124}


@dataclasses.dataclass(frozen=True)
class PoolRange:
    """One range: addresses `start`..`end` of `subnet`, minus `exclude` and the gateway."""

    subnet: IPNetwork
    start: IPAddress
    end: IPAddress
    exclude: tuple[IPNetwork, ...]
    gateway: IPAddress | None
    block_prefix: int
    where: str

    @property
    def family(self) -> int:
        return self.subnet.version

    def allocatable(self, ip: IPAddress) -> bool:
        if ip.version != self.family or not int(self.start) <= int(ip) <= int(self.end):
            return False
        if ip in (self.subnet.network_address, self.gateway):
            return False
        if self.family == 4 and ip == self.subnet.broadcast_address:
            return False
        return not any(ip in excluded for excluded in self.exclude)

    def contains(self, ip: IPAddress) -> bool:
        return ip.version == self.family and ip in self.subnet

    def __str__(self) -> str:
        return f"{self.start}-{self.end} of {self.subnet}"


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    network: str
    cni_version: str
    network_name: str
    ranges: tuple[PoolRange, ...]
    routes: tuple[Route, ...]
    dns: DNS
    kubeconfig: str
    node_name: str  # as configured ("" when not: see resolve_node)
    data_dir: str
    claim: str  # the IPAMClaim's name ("" when none), in the pod's namespace
    pod_namespace: str
    pod_name: str
    pod_uid: str


def load(stdin: bytes, args: skel.CmdArgs, *, environ: Mapping[str, str] | None = None) -> ClusterConfig:
    """The full, validated config of one ADD/CHECK (DEL and GC need only `load_light`)."""
    conf = load_conf(NetConf, stdin, casefold=True)
    ipam = hostlocal_config.load_ipam_section(conf)
    light = load_light(conf, environ=environ)
    ranges = _ranges(ipam)
    for index, first in enumerate(ranges):
        for second in ranges[index + 1 :]:
            if first.family == second.family and first.subnet.overlaps(second.subnet):
                raise _invalid(second.where, f"{second.subnet} overlaps {first.subnet} ({first.where})")
    pairs = args.cni_args
    return dataclasses.replace(
        light,
        ranges=ranges,
        routes=hostlocal_config.parse_routes(ipam.get("routes"), where="ipam.routes"),
        dns=hostlocal_config.parse_dns(ipam.get("dns")),
        claim=claim_of(conf),
        pod_namespace=pairs.get("K8S_POD_NAMESPACE", ""),
        pod_name=pairs.get("K8S_POD_NAME", ""),
        pod_uid=pairs.get("K8S_POD_UID", ""),
    )


def load_light(conf: NetConf, *, environ: Mapping[str, str] | None = None) -> ClusterConfig:
    """What DEL, GC and STATUS need: no range parsing, so a broken range never blocks a DEL."""
    environ = os.environ if environ is None else environ
    ipam = hostlocal_config.load_ipam_section(conf)
    network_name = _string(ipam, "network_name")
    kube = ipam.get("kubernetes")
    if kube is not None and not isinstance(kube, Mapping):
        raise _invalid("ipam.kubernetes", "must be an object")
    kubeconfig = _string(kube or {}, "kubeconfig", where="ipam.kubernetes.kubeconfig")
    data_dir = _string(ipam, "dataDir") or DEFAULT_DATA_DIR
    if not data_dir.startswith("/"):
        raise _invalid("ipam.dataDir", f"{data_dir!r} is not an absolute path")
    node_name = _string(ipam, "nodeName")
    return ClusterConfig(
        network=conf.name, cni_version=conf.version, network_name=network_name, ranges=(), routes=(), dns=DNS(),
        kubeconfig=kubeconfig, node_name=node_name, data_dir=data_dir, claim="", pod_namespace="", pod_name="",
        pod_uid="",
    )


def resolve_node(conf: ClusterConfig, daemon_node: str = "", environ: Mapping[str, str] | None = None) -> str:
    """The node allocating: `nodeName` in the config, else the daemon's, else $NODE_NAME,
    else the host name."""
    environ = os.environ if environ is None else environ
    return conf.node_name or daemon_node or environ.get(NODE_NAME_ENV, "") or socket.gethostname()


def claim_of(conf: NetConf) -> str:
    cni_args = (conf.args or {}).get("cni")
    value = cni_args.get(CLAIM_ARG, "") if isinstance(cni_args, Mapping) else ""
    if not isinstance(value, str):
        raise _invalid(f"args.cni.{CLAIM_ARG}", "must be a string")
    return value


def parse_range_text(text: Any, *, where: str) -> tuple[IPNetwork, IPAddress | None, IPAddress | None]:
    """`10.1.0.0/24` -> (subnet, None, None); `10.1.0.10-10.1.0.50/24` -> (subnet, start, end).
    A CIDR with host bits (`10.1.0.5/24`) starts the range at that host, as whereabouts does."""
    if not isinstance(text, str) or "/" not in text:
        raise _invalid(where, f"want a CIDR or start-end/prefix, not {text!r}")
    first, dash, rest = text.strip().partition("-")
    try:
        if dash:
            end_text, _, prefix = rest.partition("/")
            subnet = ipaddress.ip_network(f"{end_text}/{prefix}", strict=False)
            start, end = ipaddress.ip_address(first), ipaddress.ip_address(end_text)
            return subnet, start, end
        interface = ipaddress.ip_interface(first)
    except ValueError as exc:
        raise _invalid(where, f"invalid range {text!r}") from exc
    subnet = interface.network
    return subnet, (interface.ip if interface.ip != subnet.network_address else None), None


def _ranges(ipam: Mapping[str, Any]) -> tuple[PoolRange, ...]:
    gateway = _address(ipam.get("gateway"), where="ipam.gateway")
    block = _block_prefix(ipam)
    found: list[PoolRange] = []
    if ipam.get("range") not in (None, ""):
        found.append(_range(ipam, where="ipam", gateway=gateway, block=block))
    raw = ipam.get("ipRanges")
    if raw is not None:
        if not isinstance(raw, list):
            raise _invalid("ipam.ipRanges", "must be a list of ranges")
        for index, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise _invalid(f"ipam.ipRanges.{index}", "must be an object with a range")
            found.append(_range(item, where=f"ipam.ipRanges.{index}", gateway=gateway, block=block))
    if not found:
        raise _invalid("ipam.range", "no range given (range or ipRanges)")
    return tuple(found)


def _range(raw: Mapping[str, Any], *, where: str, gateway: IPAddress | None, block: int | None) -> PoolRange:
    subnet, start, end = parse_range_text(raw.get("range"), where=f"{where}.range")
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        raise _invalid(f"{where}.range", f"{subnet} is too small to allocate from")
    start = _address(raw.get("range_start"), where=f"{where}.range_start") or start
    end = _address(raw.get("range_end"), where=f"{where}.range_end") or end
    first_host: IPAddress = subnet.network_address + 1
    last: IPAddress = subnet.broadcast_address - (1 if subnet.version == 4 else 0)
    for key, value in (("range_start", start), ("range_end", end)):
        if value is not None and (value.version != subnet.version or value not in subnet):
            raise _invalid(f"{where}.{key}", f"{value} is not in {subnet}")
    low, high = start or first_host, end or last
    if int(low) > int(high):
        raise _invalid(f"{where}.range_start", f"{low} comes after range_end {high}")
    exclude = _exclude(raw.get("exclude"), where=f"{where}.exclude")
    prefix = block if block is not None else _DEFAULT_BLOCK[subnet.version]
    if prefix > subnet.max_prefixlen - 2:
        raise _invalid("ipam.block_size", f"/{prefix} is too small a block for IPv{subnet.version}")
    own_gateway = gateway if gateway is not None and gateway.version == subnet.version else None
    return PoolRange(
        subnet=subnet, start=low, end=high, exclude=exclude, gateway=own_gateway,
        block_prefix=max(prefix, subnet.prefixlen), where=where,
    )


def _block_prefix(ipam: Mapping[str, Any]) -> int | None:
    for key in ("block_size", "node_slice_size"):
        value = ipam.get(key)
        if value in (None, ""):
            continue
        text = str(value).strip().lstrip("/") if not isinstance(value, bool) else ""
        if not text.isdigit() or not 1 <= int(text) <= 128:
            raise _invalid(f"ipam.{key}", f"want a prefix length such as 28 or \"/28\", not {value!r}")
        return int(text)
    return None


def _exclude(raw: Any, *, where: str) -> tuple[IPNetwork, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _invalid(where, "must be a list of CIDRs")
    found: list[IPNetwork] = []
    for index, item in enumerate(raw):
        try:
            found.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError as exc:
            raise _invalid(f"{where}.{index}", f"invalid CIDR {item!r}") from exc
    return tuple(found)


def _address(value: Any, *, where: str) -> IPAddress | None:
    if value in (None, ""):
        return None
    try:
        return ipaddress.ip_address(str(value))
    except ValueError as exc:
        raise _invalid(where, f"invalid IP address {value!r}") from exc


def _string(raw: Mapping[str, Any], key: str, *, where: str = "") -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(where or f"ipam.{key}", "must be a string")
    return value


def _invalid(where: str, message: str) -> CniError:
    return CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: {message}")
