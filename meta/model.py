"""The meta-plugin's plan models: one network selection (an element of the NPWG v1.3
selection annotation), one attachment (a network resolved to its conflist, ifname and
runtime arguments) and the default-route decision. Wire strings live here too.

Parsing and validation of the annotation's text is meta/selection.py's job; resolving
selections to attachments is meta/resolve.py's. This module holds no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from cni.config import Conflist

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
CRI_POD_ANNOTATIONS = "io.kubernetes.cri.pod-annotations"  # containerd's runtimeConfig key

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Kubernetes names: a namespace is a DNS-1123 label, a NetworkAttachmentDefinition name a
# DNS-1123 subdomain (labels joined by dots). Neither can hold "/" or "..": path-safe.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
LABEL_RE = re.compile(rf"^{_LABEL}$")
SUBDOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
MAX_LABEL = 63
MAX_SUBDOMAIN = 253
# A MAC: 6 bytes (Ethernet) or 20 bytes (IP-over-InfiniBand, RFC 4391), ':' or '-' separated.
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2})*$")
# An InfiniBand GUID: 8 bytes.
_GUID_BYTES = 8


def is_namespace(value: str) -> bool:
    return len(value) <= MAX_LABEL and LABEL_RE.match(value) is not None


def is_object_name(value: str) -> bool:
    return len(value) <= MAX_SUBDOMAIN and SUBDOMAIN_RE.match(value) is not None


def check_mac(value: str, *, sizes: tuple[int, ...] = (6, 20)) -> str:
    """`value` if it is a hardware address of one of `sizes` bytes, else ValueError."""
    if _MAC_RE.match(value) is None or (len(value) + 1) // 3 not in sizes:
        wanted = " or ".join(str(size) for size in sizes)
        raise ValueError(f"{value!r} is not a {wanted}-byte hardware address (like 02:00:00:00:00:01)")
    return value


def _check(key: str, check: Callable[[str], str], value: str) -> None:
    """Run `check` on a set `value`, its ValueError naming `key` (as msgspec wants it)."""
    if value:
        try:
            check(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None


def check_ip(value: str) -> str:
    """`value` if it is an IP address or an IP in CIDR notation (as Multus accepts)."""
    try:
        if "/" in value:
            ipaddress.ip_interface(value)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR") from None
    return value


def _gateways(value: Any) -> tuple[IPAddress, ...] | None:
    if value is None:
        return None
    gateways: list[IPAddress] = []
    for item in value:
        if isinstance(item, ipaddress.IPv4Address | ipaddress.IPv6Address):
            gateways.append(item)
            continue
        if not isinstance(item, str):
            raise ValueError(f"default-route: {item!r} is not an IP address")
        try:
            gateways.append(ipaddress.ip_address(item))
        except ValueError:
            raise ValueError(f"default-route: {item!r} is not an IP address") from None
    return tuple(gateways)


if TYPE_CHECKING:
    Gateways = tuple[IPAddress, ...] | None
else:  # on the wire a list of strings; `__post_init__` parses them
    Gateways = tuple[Any, ...] | None

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class PortMapping(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One `portMappings` entry (CNI CONVENTIONS, the portmap plugin's runtimeConfig)."""

    host_port: Port = msgspec.field(name="hostPort")
    container_port: Port = msgspec.field(name="containerPort")
    protocol: str = ""
    host_ip: str = msgspec.field(default="", name="hostIP")

    def __post_init__(self) -> None:
        _check("hostIP", check_ip, self.host_ip)

    def to_wire(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"hostPort": self.host_port, "containerPort": self.container_port}
        if self.protocol:
            doc["protocol"] = self.protocol
        if self.host_ip:
            doc["hostIP"] = self.host_ip
        return doc


class Bandwidth(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `bandwidth` runtimeConfig (the bandwidth plugin): rates in bit/s, bursts in bits."""

    ingress_rate: Count = msgspec.field(default=0, name="ingressRate")
    ingress_burst: Count = msgspec.field(default=0, name="ingressBurst")
    egress_rate: Count = msgspec.field(default=0, name="egressRate")
    egress_burst: Count = msgspec.field(default=0, name="egressBurst")

    def to_wire(self) -> dict[str, Any]:
        doc: dict[str, Any] = msgspec.to_builtins(self)
        return doc


class NetworkSelection(msgspec.Struct, frozen=True, kw_only=True):
    """One element of `k8s.v1.cni.cncf.io/networks` (NPWG v1.3 section 4.1.2), plus
    Multus's `deviceID` and its pre-3.2 spelling `interfaceRequest`.

    `namespace` is always filled (the pod's, when the element names none).
    `default_route` is None when the key is absent and () when it is an empty list.
    Unknown keys are ignored (the caller warns about them: `decode.unknown_keys`).
    """

    name: str
    namespace: str = ""
    interface: str = ""
    ips: tuple[str, ...] = ()
    mac: str = ""
    default_route: Gateways = msgspec.field(default=None, name="default-route")
    port_mappings: tuple[PortMapping, ...] = msgspec.field(default=(), name="portMappings")
    bandwidth: Bandwidth | None = None
    cni_args: dict[str, Any] | None = msgspec.field(default=None, name="cni-args")
    infiniband_guid: str = msgspec.field(default="", name="infiniband-guid")
    ipam_claim_reference: str = msgspec.field(default="", name="ipam-claim-reference")
    device_id: str = msgspec.field(default="", name="deviceID")

    def __post_init__(self) -> None:
        if not is_object_name(self.name):
            raise ValueError(
                f"name: {self.name[:80]!r} is not a valid object name "
                "(a DNS-1123 subdomain: lower case a-z, 0-9, '-', '.')"
            )
        if self.namespace and not is_namespace(self.namespace):
            raise ValueError(
                f"namespace: {self.namespace[:80]!r} is not a valid namespace "
                "(a DNS-1123 label: lower case a-z, 0-9, '-')"
            )
        for ip in self.ips:
            _check("ips", check_ip, ip)
        _check("mac", check_mac, self.mac)
        _check("infiniband-guid", functools.partial(check_mac, sizes=(_GUID_BYTES, 20)), self.infiniband_guid)
        if self.ipam_claim_reference and not is_object_name(self.ipam_claim_reference):
            raise ValueError(f"ipam-claim-reference: {self.ipam_claim_reference[:80]!r} is not a valid object name")
        msgspec.structs.force_setattr(self, "default_route", _gateways(self.default_route))

    @property
    def key(self) -> str:
        """`namespace/name`, as network-status names the attachment."""
        return f"{self.namespace}/{self.name}"

    def capability_args(self) -> dict[str, Any]:
        """The runtimeConfig this element asks for, keyed by CNI capability name."""
        args: dict[str, Any] = {}
        if self.ips:
            args["ips"] = list(self.ips)
        if self.mac:
            args["mac"] = self.mac
        if self.port_mappings:
            args["portMappings"] = [entry.to_wire() for entry in self.port_mappings]
        if self.bandwidth is not None:
            args["bandwidth"] = self.bandwidth.to_wire()
        if self.infiniband_guid:
            args["infinibandGUID"] = self.infiniband_guid
        if self.device_id:
            args["deviceID"] = self.device_id
        return args


class Attachment(msgspec.Struct, frozen=True):
    """One network the pod gets, ready to run: the delegate conflist (as read, with only
    spec keys injected: `name`, `cniVersion`, and `args.cni` from the element's cni-args),
    the ifname it gets, and the runtimeConfig values for its capabilities.

    `network` is `namespace/name` for a NetworkAttachmentDefinition, or the CNI network
    name for a cluster network read from a file or from `delegates`. That is the name
    network-status carries.
    """

    network: str
    ifname: str
    conflist: Conflist
    is_cluster_network: bool = False
    selection: NetworkSelection | None = None
    capability_args: Mapping[str, Any] = msgspec.field(default_factory=dict)
    resource_name: str = ""  # the NAD's k8s.v1.cni.cncf.io/resourceName annotation
    device_id: str = ""  # the element's deviceID (a device plugin's, when the caller knows it)
    origin: str = ""  # where the config came from: "nad", "file:<path>" or "delegates[<i>]"

    @property
    def default_route(self) -> tuple[IPAddress, ...] | None:
        """The NPWG `default-route` gateways this attachment asked for (None: not asked)."""
        return self.selection.default_route if self.selection is not None else None

    @property
    def cni_version(self) -> str:
        return self.conflist.version


Plan = list[Attachment]


class DefaultRoute(msgspec.Struct, frozen=True):
    """NPWG `default-route`: attachment `owner` (an index into the plan) keeps the pod's
    default route of IP `family` (4 or 6); every other attachment loses its default route
    of that family. `gateway` None means: keep the owner's own default route as its
    delegate set it (the element gave `"default-route": []`)."""

    family: int
    owner: int
    gateway: IPAddress | None
