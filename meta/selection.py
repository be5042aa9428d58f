"""Parsing the pod's network selection annotation `k8s.v1.cni.cncf.io/networks` (NPWG v1.3
section 4.1, both forms: `ns/name@ifname, ...` and the JSON list) and the default-network
override `v1.multus-cni.io/default-network`.

Validation is strict: a bad element fails the whole annotation with error 7 naming the
element (its index and text), never silently drops it; unparseable JSON is error 6.
Unknown keys of a JSON element are warned about and ignored (NPWG reserves keys without
a period; implementation keys carry one). No I/O here.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import msgspec

from cni import decode, skel
from cni.errors import CniError, Code
from meta import keyhints
from meta.model import DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, NetworkSelection

log = logging.getLogger(__name__)

MAX_ANNOTATION_BYTES = 64 * 1024
MAX_ELEMENTS = 64  # more attachments than any pod needs; bounds the work an annotation causes


def parse_selection(
    annotation: str, *, pod_namespace: str, what: str = NETWORKS_ANNOTATION
) -> list[NetworkSelection]:
    """The annotation's elements in order, each with its namespace filled in (the pod's
    when it names none). An empty or blank annotation selects nothing."""
    text = _checked_text(annotation, what)
    if not text:
        return []
    # Multus's test, kept for compatibility: any of [ { " means the JSON form.
    raw_elements: list[tuple[Any, str | None]]
    if any(char in text for char in '[{"'):
        raw_elements = [(raw, None) for raw in _json_elements(text, what)]
    else:
        items = text.split(",")
        raw_elements = [(_comma_element(item, index, what), item.strip()) for index, item in enumerate(items)]
    if len(raw_elements) > MAX_ELEMENTS:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{what}: more than {MAX_ELEMENTS} networks requested")
    return [
        _element(raw, index, what=what, text=item_text, pod_namespace=pod_namespace)
        for index, (raw, item_text) in enumerate(raw_elements)
    ]


def parse_default_network(value: str, *, namespace: str) -> NetworkSelection:
    """The `v1.multus-cni.io/default-network` override: exactly one network, in either
    form; without a namespace it names a NetworkAttachmentDefinition in `namespace` (the
    netplexNamespace, as Multus reads it from multusNamespace)."""
    selections = parse_selection(value, pod_namespace=namespace, what=DEFAULT_NETWORK_ANNOTATION)
    if len(selections) != 1:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            f"{DEFAULT_NETWORK_ANNOTATION}: want exactly one network, got {len(selections)}",
        )
    return selections[0]


def _checked_text(annotation: str, what: str) -> str:
    if not isinstance(annotation, str):
        raise CniError(Code.DECODING_FAILURE, f"{what}: not a string")
    if len(annotation.encode("utf-8", "surrogatepass")) > MAX_ANNOTATION_BYTES:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{what}: larger than {MAX_ANNOTATION_BYTES // 1024} KiB")
    return annotation.strip()


def _json_elements(text: str, what: str) -> list[Any]:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CniError(Code.DECODING_FAILURE, f"{what}: not valid JSON: {exc}", str(exc)) from exc
    if not isinstance(doc, list):
        raise CniError(Code.DECODING_FAILURE, f"{what}: the JSON form must be a list of objects")
    return doc


def _comma_element(item: str, index: int, what: str) -> dict[str, Any]:
    """`[namespace/]name[@ifname]` as the JSON form's keys (NPWG 4.1.1; `@ifname` is Multus's)."""
    text = item.strip()
    where = f"{what}: element {index} ({text[:80]!r})"
    if not text:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: empty network reference")
    namespace, slash, rest = text.partition("/")
    if not slash:
        namespace, rest = "", text
    elif "/" in rest:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: want [namespace/]name[@interface]")
    name, at, ifname = rest.partition("@")
    if at and "@" in ifname:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: want [namespace/]name[@interface]")
    if slash and not namespace.strip():
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: empty namespace")
    if at and not ifname.strip():
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: empty interface name")
    element: dict[str, Any] = {"name": name.strip()}
    if namespace.strip():
        element["namespace"] = namespace.strip()
    if ifname.strip():
        element["interface"] = ifname.strip()
    return element


def _element(raw: Any, index: int, *, what: str, text: str | None, pod_namespace: str) -> NetworkSelection:
    if not isinstance(raw, dict):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{what}: element {index}: not a JSON object")
    raw = {key: value for key, value in raw.items() if value is not None}  # null reads as absent, as in Go
    label = text if text is not None else raw.get("name")
    where = f"{what}: element {index}" + (f" ({label[:80]!r})" if isinstance(label, str) else "")
    # Multus before 3.2 spelled `interface` as `interfaceRequest`; it still reads it.
    if "interfaceRequest" in raw and not raw.get("interface"):
        raw["interface"] = raw["interfaceRequest"]
    raw.pop("interfaceRequest", None)
    if not raw.get("namespace"):
        raw["namespace"] = pod_namespace
    try:
        selection = decode.convert(NetworkSelection, raw)
    except msgspec.ValidationError as exc:
        problem = decode.message(exc, "element", raw).removeprefix("element.")
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: {problem}", str(exc)) from exc
    if selection.interface:
        try:
            skel.validate_ifname(selection.interface, variable="interface")
        except CniError as err:
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: {err.msg}") from err
    for key in sorted(decode.unknown_keys(raw, NetworkSelection)):
        # NPWG reserves keys without a period (likely a typo); dotted keys are other
        # implementations' own.
        if "." in key:
            log.debug("%s: implementation key %r ignored", where, key)
        else:
            log.warning("%s: unknown key %r ignored%s", where, key, keyhints.suggestion(key, SELECTION_KEYS))
    return selection


SELECTION_KEYS = keyhints.model_keys(NetworkSelection) | {"interfaceRequest"}
