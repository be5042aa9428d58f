"""Typed decoding of JSON documents into msgspec Structs, every problem a CNI error that
names the key (`delegates.1.type: Expected `str`, got `int``).

The CNI path's models (configs, results, the cache) are msgspec Structs, not pydantic
models: importing pydantic and building its first model costs about 110 ms, paid by every
exec'd call (thin mode, each delegate), where msgspec costs about 9. pydantic stays for
what runs off that path (the policy CRD model, hot-plug records).

Decoding is strict, as Go's encoding/json is for the reference plugins: no string for a
number or a boolean, no float for an integer. A model's own checks raise
`ValueError(f"{key}: {problem}")` from `__post_init__`; msgspec places them at the
object's path, and `where` is prepended to all of it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from cni.errors import CniError, Code

S = TypeVar("S", bound=msgspec.Struct)

_AT = " - at `$"
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_GOT = re.compile(r"got `(\w+)`")
_JSON_TYPES = {str: "str", bool: "bool", int: "int", float: "float", type(None): "null", list: "array", dict: "object"}
_OURS = re.compile(r"^[A-Za-z_][\w./-]*: ")  # a model's own "key: problem"
_SURROGATE = re.compile("[\ud800-\udfff]")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]+)`$")  # forbid_unknown_fields


def decode(
    model: type[S],
    doc: Any,
    *,
    where: str = "",
    code: int = Code.INVALID_NETWORK_CONFIG,
    casefold: bool = False,
) -> S:
    """`doc` (parsed JSON) as `model`. Not an object: error 6. A bad value: `code` (7 for a
    config, 6 for a result), the message naming `where` and the key's path. `casefold`
    matches keys to the model's in any case, as Go's decoder does (the first spelling of a
    key wins; an exact spelling always does)."""
    if not isinstance(doc, Mapping):
        raise CniError(Code.DECODING_FAILURE, f"{where or 'config'}: not a JSON object")
    if casefold:
        doc = casefold_keys(doc, model)
    try:
        return convert(model, doc)
    except msgspec.ValidationError as exc:
        raise CniError(code, message(exc, where, doc), str(exc)) from exc


def convert(model: type[S], doc: Any) -> S:
    """msgspec.convert, strict, except that a lone surrogate (JSON `"\\ud800"`, which
    msgspec cannot encode) reads as U+FFFD, as Go reads it. Raises msgspec.ValidationError."""
    try:
        return msgspec.convert(doc, model)
    except UnicodeEncodeError:
        return msgspec.convert(_without_surrogates(doc), model)


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {_without_surrogates(key): _without_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    return value


def message(exc: msgspec.ValidationError, where: str = "", doc: Any = None) -> str:
    """msgspec's `problem - at `$.a[0].b`` as `where.a.0.b: problem`. msgspec writes a
    mapping's value as `[...]`; with the document at hand, the key is the first whose
    value has the type msgspec got."""
    text = str(exc)
    problem, found, path = text.rpartition(_AT)
    if not found:
        problem, path = text, ""
    parts = [where] if where else []
    node = doc
    for key, index in _STEP.findall(path.rstrip("`")):
        step = key or index
        if step == "...":
            step = _offending_key(node, problem)
        parts.append(step)
        node = _child(node, step)
    missing = _MISSING.match(problem)
    if missing:
        parts.append(missing.group(1))
        problem = "required key missing"
    elif unknown := _UNKNOWN.match(problem):
        parts.append(unknown.group(1))
        problem = "unknown key"
    elif _OURS.match(problem):
        key, _, problem = problem.partition(": ")
        parts.append(key)
    return f"{'.'.join(parts) or 'config'}: {problem}"


def _child(node: Any, step: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(step)
    if isinstance(node, list) and step.isdigit() and int(step) < len(node):
        return node[int(step)]
    return None


def _offending_key(node: Any, problem: str) -> str:
    got = _GOT.search(problem)
    if isinstance(node, Mapping) and got:
        for key, value in node.items():
            if _JSON_TYPES.get(type(value)) == got.group(1):
                return str(key)
    return "*"


@functools.cache
def wire_names(model: type[msgspec.Struct]) -> frozenset[str]:
    """The keys `model` reads (its fields' wire names). From the class's own table:
    msgspec.structs.fields would resolve every annotation again, on every call."""
    return frozenset(model.__struct_encode_fields__)


@functools.cache
def _folded_names(model: type[msgspec.Struct]) -> dict[str, str]:
    return {name.lower(): name for name in wire_names(model)}


def unknown_keys(doc: Mapping[str, Any], model: type[msgspec.Struct]) -> list[str]:
    """The keys of `doc` that `model` does not read, in order."""
    known = wire_names(model)
    return [key for key in doc if key not in known]


def casefold_keys(doc: Mapping[str, Any], model: type[msgspec.Struct]) -> dict[str, Any]:
    """`doc` with each key that matches one of `model`'s wire names in another case renamed
    to it, as Go's encoding/json matches them."""
    wanted = _folded_names(model)
    renamed = dict(doc)
    for key in doc:
        canonical = wanted.get(key.lower()) if isinstance(key, str) else None
        if canonical is not None and canonical != key and canonical not in renamed:
            renamed[canonical] = renamed.pop(key)
    return renamed


def dump(value: msgspec.Struct, *, omit: Iterable[str] = ()) -> dict[str, Any]:
    """A Struct as JSON-ready builtins under its wire names (addresses as strings),
    without the wire keys in `omit` whose value is None."""
    doc: dict[str, Any] = msgspec.to_builtins(value, enc_hook=str)
    for key in omit:
        if doc.get(key, 0) is None:
            del doc[key]
    return doc
