"""The bridge delegate's network configuration: the reference bridge plugin's keys, parsed
and checked before anything is touched.

Keys and defaults follow containernetworking/plugins `plugins/main/bridge`, so a NAD
written for it works unchanged: Go's JSON decoder matches keys case-insensitively, and so
does `load` (`"isgateway"`, `"ID"` in a `vlanTrunk` entry). A bad value is error 7 naming
the key (the reference reports most of these as code 999). Departures, each a superset:
`vlan` together with `vlanTrunk` makes a trunk whose native (PVID, untagged) VLAN is
`vlan`; `ipMasqBackend` is accepted but masquerading is always nftables. No netlink here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from cni import decode
from cni.config import NetConf, load_conf
from cni.errors import CniError, Code

DEFAULT_BRIDGE = "cni0"
MAX_VLAN = 4094
MIN_MTU = 68  # IPv4's minimum (RFC 791); the kernel refuses less on a bridge or veth
MAX_MTU = 65535  # ETH_MAX_MTU
_IFNAME_FORBIDDEN = re.compile(r"[/:\s]")


class VlanTrunk(msgspec.Struct, frozen=True, kw_only=True):
    """One `vlanTrunk` entry: a single `id`, or a `minID`..`maxID` range, or both."""

    min_id: int | None = msgspec.field(default=None, name="minID")
    max_id: int | None = msgspec.field(default=None, name="maxID")
    id: int | None = None

    def __post_init__(self) -> None:
        for key, value in (("minID", self.min_id), ("maxID", self.max_id), ("id", self.id)):
            if value is not None and not 1 <= value <= MAX_VLAN:
                raise ValueError(f"{key}: VLAN ID {value} is out of range 1-4094")
        if (self.min_id is None) != (self.max_id is None):
            missing = "minID" if self.min_id is None else "maxID"
            raise ValueError(f"minID and maxID go together: {missing} is missing")
        if self.min_id is not None and self.max_id is not None and self.min_id > self.max_id:
            raise ValueError(f"minID {self.min_id} is greater than maxID {self.max_id}")

    def vids(self) -> set[int]:
        found = set() if self.id is None else {self.id}
        if self.min_id is not None and self.max_id is not None:
            found.update(range(self.min_id, self.max_id + 1))
        return found


class BridgeConf(NetConf, frozen=True, kw_only=True):
    """The bridge plugin's config (reference keys; `load` matches them in any case)."""

    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = msgspec.field(default=False, name="isGateway")
    is_default_gateway: bool = msgspec.field(default=False, name="isDefaultGateway")
    force_address: bool = msgspec.field(default=False, name="forceAddress")
    ip_masq: bool = msgspec.field(default=False, name="ipMasq")
    ip_masq_backend: str | None = msgspec.field(default=None, name="ipMasqBackend")
    mtu: int = 0
    hairpin_mode: bool = msgspec.field(default=False, name="hairpinMode")
    promisc_mode: bool = msgspec.field(default=False, name="promiscMode")
    vlan: int = 0
    vlan_trunk: list[VlanTrunk] | None = msgspec.field(default=None, name="vlanTrunk")
    preserve_default_vlan: bool = msgspec.field(default=True, name="preserveDefaultVlan")
    macspoofchk: bool = False
    enabledad: bool = False
    disable_container_interface: bool = msgspec.field(default=False, name="disableContainerInterface")
    port_isolation: bool = msgspec.field(default=False, name="portIsolation")

    def __post_init__(self) -> None:
        if not self.bridge:
            msgspec.structs.force_setattr(self, "bridge", DEFAULT_BRIDGE)  # the reference treats "" as unset
        elif len(self.bridge) > 15 or self.bridge in {".", ".."} or _IFNAME_FORBIDDEN.search(self.bridge):
            raise ValueError(f"bridge: '{self.bridge}' is not a valid interface name")
        if self.mtu != 0 and not MIN_MTU <= self.mtu <= MAX_MTU:
            raise ValueError(f"mtu: MTU {self.mtu} is out of range {MIN_MTU}-{MAX_MTU} (0: the kernel's default)")
        if not 0 <= self.vlan <= MAX_VLAN:
            raise ValueError(f"vlan: invalid VLAN ID {self.vlan} (must be between 0 and 4094)")
        if self.ip_masq_backend not in (None, "iptables", "nftables"):
            raise ValueError(f"ipMasqBackend: must be \"iptables\" or \"nftables\", not '{self.ip_masq_backend}'")

    @property
    def is_layer3(self) -> bool:
        """True when an IPAM plugin is configured (`ipam: {}` or no `ipam`: layer 2 only)."""
        return bool(self.ipam and self.ipam.get("type"))

    @property
    def gateway_mode(self) -> bool:
        """`isGateway`, which `isDefaultGateway` implies."""
        return self.is_gateway or self.is_default_gateway

    @property
    def trunk_vids(self) -> list[int]:
        """The trunk's VLAN IDs, sorted and without duplicates."""
        vids: set[int] = set()
        for entry in self.vlan_trunk or ():
            vids |= entry.vids()
        return sorted(vids)

    @property
    def vlan_filtering(self) -> bool:
        """The bridge needs VLAN filtering when the port gets an access or trunk VLAN."""
        return self.vlan != 0 or self.vlan_trunk is not None


def load(stdin: bytes | str | Mapping[str, Any]) -> BridgeConf:
    """Parse and check the config; error 7 names the offending key. Keys match in any case,
    the `vlanTrunk` entries' too, as Go's decoder matches them."""
    try:
        doc = stdin if isinstance(stdin, Mapping) else json.loads(stdin)
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    if not isinstance(doc, Mapping):
        return load_conf(BridgeConf, stdin)  # not a JSON object: its error 6
    doc = decode.casefold_keys(doc, BridgeConf)
    trunk = doc.get("vlanTrunk")
    if isinstance(trunk, list):
        doc["vlanTrunk"] = [
            decode.casefold_keys(entry, VlanTrunk) if isinstance(entry, Mapping) else entry for entry in trunk
        ]
    return load_conf(BridgeConf, doc)


def check_for_add(conf: BridgeConf) -> None:
    """The checks across keys that only matter when something is about to be created."""
    if conf.hairpin_mode and conf.promisc_mode:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG, "promiscMode: cannot set hairpin mode and promiscuous mode at the same time"
        )
    if conf.disable_container_interface and conf.is_layer3:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            "disableContainerInterface: cannot use IPAM when the container interface is disabled",
        )
