"""CNI results: one model (the 1.1 shape) and conversion to and from every version we speak.

Conversion rules (CNI spec 1.1 "Result", and the 0.3/0.4 documents):
- 0.3.0, 0.3.1, 0.4.0: each `ips` entry carries `"version": "4"|"6"`; 1.x drops it.
- 1.1.0 adds `mtu`, `socketPath`, `pciID` to interfaces and `mtu`, `advmss`, `priority`,
  `table`, `scope` to routes; older versions drop them.
- 0.1/0.2 results (`ip4`/`ip6`) are not spoken.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from cni import decode, version
from cni.errors import CniError, Code

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

if TYPE_CHECKING:
    Address = IPInterface
    Network = IPNetwork
    Gateway = IPAddress | None
else:  # on the wire a string; `__post_init__` parses it (msgspec takes no union of classes)
    Address = Network = Gateway = Any

_PARSED = (
    ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface,
    ipaddress.IPv6Interface, ipaddress.IPv4Network, ipaddress.IPv6Network,
)
Unsigned = Annotated[int, msgspec.Meta(ge=0)]


def _text(key: str, value: Any) -> str:
    # On the wire every address is a string: a number or a boolean would otherwise be
    # taken by ipaddress as an integer address (0 -> 0.0.0.0/32).
    if not isinstance(value, str):
        raise ValueError(f"{key}: must be a string")
    return value


def _parse(struct: msgspec.Struct, key: str, parse: Any, value: Any) -> None:
    if value is None or isinstance(value, _PARSED):
        return
    try:
        msgspec.structs.force_setattr(struct, key, parse(_text(key, value)))
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(f"{key}: ") else f"{key}: {message}") from exc


def _as_network(text: str) -> IPNetwork:
    # Like Go's net.ParseCIDR: host bits are allowed and masked off.
    return ipaddress.ip_network(text, strict=False)


def _gateway(struct: msgspec.Struct, key: str, value: Any) -> None:
    if value == "":
        msgspec.structs.force_setattr(struct, key, None)
    else:
        _parse(struct, key, ipaddress.ip_address, value)


class Interface(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    mac: str = ""
    mtu: int | None = None
    sandbox: str = ""
    socket_path: str = msgspec.field(default="", name="socketPath")
    pci_id: str = msgspec.field(default="", name="pciID")


class IPConfig(msgspec.Struct, frozen=True, kw_only=True):
    address: Address
    gateway: Gateway = None
    interface: Unsigned | None = None  # an index into `interfaces` (spec: uint)

    def __post_init__(self) -> None:
        if self.address is None:
            raise ValueError("address: must be a string")
        _parse(self, "address", ipaddress.ip_interface, self.address)
        _gateway(self, "gateway", self.gateway)

    @property
    def family(self) -> int:
        return self.address.version


class Route(msgspec.Struct, frozen=True, kw_only=True):
    dst: Network
    gw: Gateway = None
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None

    def __post_init__(self) -> None:
        if self.dst is None:
            raise ValueError("dst: must be a string")
        _parse(self, "dst", _as_network, self.dst)
        _gateway(self, "gw", self.gw)


class DNS(msgspec.Struct, frozen=True, kw_only=True):
    nameservers: list[str] = []
    domain: str = ""
    search: list[str] = []
    options: list[str] = []

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)

    def to_wire(self) -> dict[str, Any]:
        """The keys that are set (what a result and network-status carry)."""
        doc: dict[str, Any] = {}
        for key in ("nameservers", "domain", "search", "options"):
            value = getattr(self, key)
            if value:
                doc[key] = value
        return doc


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """A plugin's ADD result, held in the newest shape; `to_wire` speaks any version."""

    cni_version: str = msgspec.field(default=version.CURRENT_VERSION, name="cniVersion")
    interfaces: list[Interface] = []
    ips: list[IPConfig] = []
    routes: list[Route] = []
    dns: DNS = DNS()

    @classmethod
    def from_wire(cls, doc: Any, *, where: str = "result") -> Result:
        """Parse a result document of any supported version (error 6 naming `where`)."""
        if not isinstance(doc, dict):
            raise CniError(Code.DECODING_FAILURE, f"{where}: not a JSON object")
        if "ip4" in doc or "ip6" in doc:
            raise CniError(Code.INCOMPATIBLE_VERSION, f"{where}: 0.1/0.2 results are not supported")
        raw_version = doc.get("cniVersion") or version.CURRENT_VERSION
        try:
            version.require_supported(str(raw_version))
        except CniError as err:
            raise err.prefixed(where) from err
        return decode.decode(cls, doc, where=where, code=Code.DECODING_FAILURE)

    def to_wire(self, cni_version: str) -> dict[str, Any]:
        """The result as `cni_version` shapes it (fields that version lacks are dropped)."""
        version.require_supported(cni_version)
        is_11 = version.at_least(cni_version, "1.1.0")
        is_1x = version.at_least(cni_version, "1.0.0")
        doc: dict[str, Any] = {"cniVersion": cni_version}
        if self.interfaces:
            doc["interfaces"] = [_interface_wire(i, is_11) for i in self.interfaces]
        if self.ips:
            doc["ips"] = [_ip_wire(ip, is_1x) for ip in self.ips]
        if self.routes:
            doc["routes"] = [_route_wire(r, is_11) for r in self.routes]
        if not self.dns.is_empty():
            doc["dns"] = self.dns.to_wire()
        return doc

    def with_version(self, cni_version: str) -> Result:
        return msgspec.structs.replace(self, cni_version=cni_version)


def convert(doc: Any, cni_version: str, *, where: str = "result") -> dict[str, Any]:
    """Convert a result document of any supported version to `cni_version`."""
    return Result.from_wire(doc, where=where).to_wire(cni_version)


def _interface_wire(iface: Interface, is_11: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": iface.name}
    if iface.mac:
        doc["mac"] = iface.mac
    if is_11 and iface.mtu:
        doc["mtu"] = iface.mtu
    if iface.sandbox:
        doc["sandbox"] = iface.sandbox
    if is_11 and iface.socket_path:
        doc["socketPath"] = iface.socket_path
    if is_11 and iface.pci_id:
        doc["pciID"] = iface.pci_id
    return doc


def _ip_wire(ip: IPConfig, is_1x: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if not is_1x:
        doc["version"] = str(ip.address.version)
    doc["address"] = str(ip.address)
    if ip.gateway is not None:
        doc["gateway"] = str(ip.gateway)
    if ip.interface is not None:
        doc["interface"] = ip.interface
    return doc


def _route_wire(route: Route, is_11: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"dst": str(route.dst)}
    if route.gw is not None:
        doc["gw"] = str(route.gw)
    if is_11:
        for key in ("mtu", "advmss", "priority", "table", "scope"):
            value = getattr(route, key)
            if value is not None:
                doc[key] = value
    return doc
