"""The meta-plugin's plan models: one network selection (an element of the NPWG v1.3
selection annotation), one attachment (a network resolved to its conflist, ifname and
runtime arguments) and the default-route decision. Wire strings live here too.

Parsing and validation of the annotation's text is meta/selection.py's job; resolving
selections to attachments is meta/resolve.py's. This module holds no I/O.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, field_validator

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


def _as_ip(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
    return value


GatewayIP = Annotated[IPAddress, BeforeValidator(_as_ip)]


class PortMapping(BaseModel):
    """One `portMappings` entry (CNI CONVENTIONS, the portmap plugin's runtimeConfig)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    host_port: StrictInt = Field(alias="hostPort", ge=0, le=65535)
    container_port: StrictInt = Field(alias="containerPort", ge=0, le=65535)
    protocol: StrictStr = ""
    host_ip: StrictStr = Field("", alias="hostIP")

    @field_validator("host_ip")
    @classmethod
    def _host_ip(cls, value: str) -> str:
        return check_ip(value) if value else value

    def to_wire(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"hostPort": self.host_port, "containerPort": self.container_port}
        if self.protocol:
            doc["protocol"] = self.protocol
        if self.host_ip:
            doc["hostIP"] = self.host_ip
        return doc


class Bandwidth(BaseModel):
    """The `bandwidth` runtimeConfig (the bandwidth plugin): rates in bit/s, bursts in bits."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    ingress_rate: StrictInt = Field(0, alias="ingressRate", ge=0)
    ingress_burst: StrictInt = Field(0, alias="ingressBurst", ge=0)
    egress_rate: StrictInt = Field(0, alias="egressRate", ge=0)
    egress_burst: StrictInt = Field(0, alias="egressBurst", ge=0)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class NetworkSelection(BaseModel):
    """One element of `k8s.v1.cni.cncf.io/networks` (NPWG v1.3 section 4.1.2), plus
    Multus's `deviceID` and its pre-3.2 spelling `interfaceRequest`.

    `namespace` is always filled (the pod's, when the element names none).
    `default_route` is None when the key is absent and () when it is an empty list.
    Unknown keys are kept in `model_extra` (the caller warns about them).
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="allow")

    name: StrictStr
    namespace: StrictStr = ""
    interface: StrictStr = ""
    ips: tuple[StrictStr, ...] = ()
    mac: StrictStr = ""
    default_route: tuple[GatewayIP, ...] | None = Field(None, alias="default-route")
    port_mappings: tuple[PortMapping, ...] = Field((), alias="portMappings")
    bandwidth: Bandwidth | None = None
    cni_args: dict[str, Any] | None = Field(None, alias="cni-args")
    infiniband_guid: StrictStr = Field("", alias="infiniband-guid")
    ipam_claim_reference: StrictStr = Field("", alias="ipam-claim-reference")
    device_id: StrictStr = Field("", alias="deviceID")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_object_name(value):
            raise ValueError(
                f"{value[:80]!r} is not a valid object name (a DNS-1123 subdomain: lower case a-z, 0-9, '-', '.')"
            )
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if value and not is_namespace(value):
            raise ValueError(f"{value[:80]!r} is not a valid namespace (a DNS-1123 label: lower case a-z, 0-9, '-')")
        return value

    @field_validator("ips")
    @classmethod
    def _ips(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ip in value:
            check_ip(ip)
        return value

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str) -> str:
        return check_mac(value) if value else value

    @field_validator("infiniband_guid")
    @classmethod
    def _guid(cls, value: str) -> str:
        return check_mac(value, sizes=(_GUID_BYTES, 20)) if value else value

    @field_validator("ipam_claim_reference")
    @classmethod
    def _claim(cls, value: str) -> str:
        if value and not is_object_name(value):
            raise ValueError(f"{value[:80]!r} is not a valid object name")
        return value

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


@dataclasses.dataclass(frozen=True)
class Attachment:
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
    capability_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
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


@dataclasses.dataclass(frozen=True)
class DefaultRoute:
    """NPWG `default-route`: attachment `owner` (an index into the plan) keeps the pod's
    default route of IP `family` (4 or 6); every other attachment loses its default route
    of that family. `gateway` None means: keep the owner's own default route as its
    delegate set it (the element gave `"default-route": []`)."""

    family: int
    owner: int
    gateway: IPAddress | None
