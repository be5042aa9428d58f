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

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from cni.config import NetConf, load_conf
from cni.errors import CniError, Code

DEFAULT_BRIDGE = "cni0"
MAX_VLAN = 4094
MIN_MTU = 68  # IPv4's minimum (RFC 791); the kernel refuses less on a bridge or veth
MAX_MTU = 65535  # ETH_MAX_MTU
_IFNAME_FORBIDDEN = re.compile(r"[/:\s]")


def _casefold_keys(data: Any, model: type[BaseModel]) -> Any:
    """Rename keys that match one of `model`'s wire names in another case, as Go does."""
    if not isinstance(data, Mapping):
        return data
    wanted = {(field.alias or name).lower(): field.alias or name for name, field in model.model_fields.items()}
    renamed = dict(data)
    for key in data:
        canonical = wanted.get(key.lower()) if isinstance(key, str) else None
        if canonical is not None and canonical != key and canonical not in data:
            renamed[canonical] = renamed.pop(key)
    return renamed


class VlanTrunk(BaseModel):
    """One `vlanTrunk` entry: a single `id`, or a `minID`..`maxID` range, or both."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    min_id: int | None = Field(None, alias="minID")
    max_id: int | None = Field(None, alias="maxID")
    id: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _case(cls, data: Any) -> Any:
        return _casefold_keys(data, cls)

    @field_validator("min_id", "max_id", "id")
    @classmethod
    def _in_range(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= MAX_VLAN:
            raise PydanticCustomError("vlan_range", "VLAN ID {value} is out of range 1-4094", {"value": value})
        return value

    @model_validator(mode="after")
    def _paired(self) -> VlanTrunk:
        if (self.min_id is None) != (self.max_id is None):
            missing = "minID" if self.min_id is None else "maxID"
            raise PydanticCustomError(
                "vlan_pair", "minID and maxID go together: {missing} is missing", {"missing": missing}
            )
        if self.min_id is not None and self.max_id is not None and self.min_id > self.max_id:
            raise PydanticCustomError(
                "vlan_order", "minID {lo} is greater than maxID {hi}", {"lo": self.min_id, "hi": self.max_id}
            )
        return self

    def vids(self) -> set[int]:
        found = set() if self.id is None else {self.id}
        if self.min_id is not None and self.max_id is not None:
            found.update(range(self.min_id, self.max_id + 1))
        return found


class BridgeConf(NetConf):
    """The bridge plugin's config (reference keys; unknown keys are kept, as the spec says)."""

    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = Field(False, alias="isGateway")
    is_default_gateway: bool = Field(False, alias="isDefaultGateway")
    force_address: bool = Field(False, alias="forceAddress")
    ip_masq: bool = Field(False, alias="ipMasq")
    ip_masq_backend: str | None = Field(None, alias="ipMasqBackend")
    mtu: int = 0
    hairpin_mode: bool = Field(False, alias="hairpinMode")
    promisc_mode: bool = Field(False, alias="promiscMode")
    vlan: int = 0
    vlan_trunk: list[VlanTrunk] | None = Field(None, alias="vlanTrunk")
    preserve_default_vlan: bool = Field(True, alias="preserveDefaultVlan")
    macspoofchk: bool = False
    enabledad: bool = False
    disable_container_interface: bool = Field(False, alias="disableContainerInterface")
    port_isolation: bool = Field(False, alias="portIsolation")

    @model_validator(mode="before")
    @classmethod
    def _case(cls, data: Any) -> Any:
        return _casefold_keys(data, cls)

    @field_validator("bridge")
    @classmethod
    def _bridge_name(cls, value: str) -> str:
        if not value:
            return DEFAULT_BRIDGE  # the reference treats "" as unset
        if len(value) > 15 or value in {".", ".."} or _IFNAME_FORBIDDEN.search(value):
            raise PydanticCustomError("ifname", "'{name}' is not a valid interface name", {"name": value})
        return value

    @field_validator("mtu")
    @classmethod
    def _mtu(cls, value: int) -> int:
        if value != 0 and not MIN_MTU <= value <= MAX_MTU:
            raise PydanticCustomError(
                "mtu",
                "MTU {value} is out of range {lo}-{hi} (0: the kernel's default)",
                {"value": value, "lo": MIN_MTU, "hi": MAX_MTU},
            )
        return value

    @field_validator("vlan")
    @classmethod
    def _vlan(cls, value: int) -> int:
        if not 0 <= value <= MAX_VLAN:
            raise PydanticCustomError(
                "vlan_range", "invalid VLAN ID {value} (must be between 0 and 4094)", {"value": value}
            )
        return value

    @field_validator("ip_masq_backend")
    @classmethod
    def _backend(cls, value: str | None) -> str | None:
        if value not in (None, "iptables", "nftables"):
            raise PydanticCustomError("backend", 'must be "iptables" or "nftables", not \'{value}\'', {"value": value})
        return value

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
    """Parse and check the config; error 7 names the offending key."""
    return load_conf(BridgeConf, stdin)


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
