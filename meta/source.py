"""Where the meta-plugin reads pods and NetworkAttachmentDefinitions and writes
network-status: the Kubernetes API (meta/k8s.py) or a local directory of manifests
(meta/local.py). Both return these models and raise these errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgspec


class SourceError(Exception):
    """A failure of the network source; `what` names the object."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(f"{what}: {message}")
        self.what = what


class NotFound(SourceError):
    """The object does not exist (HTTP 404, or no such manifest)."""


class Unavailable(SourceError):
    """The source cannot answer now (connection refused, 5xx, timeout): try again later."""


class Forbidden(SourceError):
    """The source refused (401/403): netplex's credentials lack a permission."""


class Pod(msgspec.Struct, frozen=True):
    namespace: str
    name: str
    uid: str = ""
    annotations: Mapping[str, str] = msgspec.field(default_factory=dict)
    # For network policy (meta/policy/): the pod's labels, and its containers' named ports
    # (name -> (protocol, number)); empty when the source does not say.
    labels: Mapping[str, str] = msgspec.field(default_factory=dict)
    named_ports: Mapping[str, tuple[str, int]] = msgspec.field(default_factory=dict)


class Namespace(msgspec.Struct, frozen=True):
    """A Kubernetes namespace, as network policy's namespaceSelector sees it."""

    name: str
    labels: Mapping[str, str] = msgspec.field(default_factory=dict)


class PolicyObject(msgspec.Struct, frozen=True):
    """A MultiNetworkPolicy as read: its identity, annotations (`policy-for`) and its spec,
    still the API's JSON (meta/policy/model.py parses it)."""

    namespace: str
    name: str
    annotations: Mapping[str, str] = msgspec.field(default_factory=dict)
    spec: Mapping[str, Any] = msgspec.field(default_factory=dict)


class NetworkAttachment(msgspec.Struct, frozen=True):
    """One NetworkAttachmentDefinition: `config` is its spec.config (may be empty)."""

    namespace: str
    name: str
    config: str = ""
    annotations: Mapping[str, str] = msgspec.field(default_factory=dict)


def encode_network_status(status: list[dict[str, Any]]) -> str:
    """The network-status annotation's value, byte for byte as Multus writes it: each entry
    indented by four spaces (Go's json.MarshalIndent), joined by "," inside "[...]". The
    same text as `json.dumps(entry, indent=4, ensure_ascii=False)`, whose indenting
    encoder is pure Python (~10x slower: a few percent of a daemon ADD's CPU)."""
    return "[" + ",".join(msgspec.json.format(msgspec.json.encode(entry), indent=4).decode() for entry in status) + "]"


class Source(Protocol):
    def get_pod(self, namespace: str, name: str) -> Pod: ...

    def get_attachment(self, namespace: str, name: str) -> NetworkAttachment: ...

    def set_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        """Write the network-status annotation with one patch (no read-modify-write)."""
        ...
