"""The MultiNetworkPolicy spec as netplex reads it: the NetworkPolicy spec (podSelector,
policyTypes, ingress/egress rules of peers and ports) plus the `policy-for` annotation
naming the networks it applies to. Parsed with pydantic at the edge; a policy that does
not parse is reported (`PolicyError`, naming the field) and left out by the caller.

Pure: no I/O, no Kubernetes client. Must not import meta.k8s or the engine."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meta.source import PolicyObject

POLICY_FOR_ANNOTATION = "k8s.v1.cni.cncf.io/policy-for"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PolicyError(ValueError):
    """A MultiNetworkPolicy netplex cannot enforce; the message names it and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


class Requirement(_Model):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values  # NotIn


class LabelSelector(_Model):
    """metav1.LabelSelector: every term must hold; the empty selector matches everything."""

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: tuple[Requirement, ...] = Field((), alias="matchExpressions")

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match_labels.items()) and all(
            term.matches(labels) for term in self.match_expressions
        )


class IPBlock(_Model):
    cidr: str
    except_: tuple[str, ...] = Field((), alias="except")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        ipaddress.ip_network(value, strict=False)
        return value

    @field_validator("except_")
    @classmethod
    def _excepts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    def networks(self) -> list[Network]:
        """The block minus its exceptions, as disjoint prefixes."""
        return list(_block_networks(self.cidr, self.except_))


@functools.lru_cache(maxsize=4096)
def _block_networks(cidr: str, excepts: tuple[str, ...]) -> tuple[Network, ...]:
    """`cidr` minus `excepts` (computed once per distinct block: ipaddress is slow)."""
    kept: list[Network] = [ipaddress.ip_network(cidr, strict=False)]
    for text in excepts:
        hole = ipaddress.ip_network(text, strict=False)
        next_kept: list[Network] = []
        for net in kept:
            if net.version == hole.version and hole.subnet_of(net):  # type: ignore[arg-type]
                next_kept.extend(net.address_exclude(hole))  # type: ignore[arg-type]
            elif net.version == hole.version and net.subnet_of(hole):  # type: ignore[arg-type]
                continue
            else:
                next_kept.append(net)
        kept = next_kept
    return tuple(kept)


class Peer(_Model):
    pod_selector: LabelSelector | None = Field(None, alias="podSelector")
    namespace_selector: LabelSelector | None = Field(None, alias="namespaceSelector")
    ip_block: IPBlock | None = Field(None, alias="ipBlock")


class PolicyPort(_Model):
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    port: int | str | None = None
    end_port: int | None = Field(None, alias="endPort")

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 1 <= value <= 65535:
            raise ValueError("a port number is 1 to 65535")
        return value

    @field_validator("end_port")
    @classmethod
    def _end_port(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 65535:
            raise ValueError("endPort is 1 to 65535")
        return value


class Rule(_Model):
    """An ingress rule (`from`) or an egress rule (`to`): peers None means every peer."""

    ports: tuple[PolicyPort, ...] = ()
    from_: tuple[Peer, ...] | None = Field(None, alias="from")
    to: tuple[Peer, ...] | None = None


class PolicySpec(_Model):
    pod_selector: LabelSelector = Field(default_factory=LabelSelector, alias="podSelector")
    policy_types: tuple[Literal["Ingress", "Egress"], ...] | None = Field(None, alias="policyTypes")
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()


@dataclasses.dataclass(frozen=True)
class Policy:
    """One parsed MultiNetworkPolicy; `networks` are "namespace/name" of the NADs it is for."""

    namespace: str
    name: str
    networks: frozenset[str]
    spec: PolicySpec

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def isolates(self, direction: Literal["Ingress", "Egress"]) -> bool:
        """NetworkPolicy's defaulting: without policyTypes, Ingress always, Egress when
        the policy has egress rules."""
        types: tuple[str, ...] | None = self.spec.policy_types
        if types is None:
            types = ("Ingress", "Egress") if self.spec.egress else ("Ingress",)
        return direction in types


def policy_for(namespace: str, annotations: Mapping[str, str]) -> frozenset[str]:
    """The networks of `policy-for`: "<ns>/<nad>" or "<nad>" (the policy's namespace)."""
    raw = annotations.get(POLICY_FOR_ANNOTATION, "")
    found = set()
    for part in raw.split(","):
        item = part.strip()
        if item:
            found.add(item if "/" in item else f"{namespace}/{item}")
    return frozenset(found)


def parse(obj: PolicyObject) -> Policy:
    """A parsed policy, or `PolicyError` naming the field that is wrong."""
    where = f'MultiNetworkPolicy "{obj.namespace}/{obj.name}"'
    try:
        spec = PolicySpec.model_validate(dict(obj.spec))
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        raise PolicyError(f"{where}: spec.{path}: {first['msg']}") from exc
    networks = policy_for(obj.namespace, obj.annotations)
    return Policy(namespace=obj.namespace, name=obj.name, networks=networks, spec=spec)
