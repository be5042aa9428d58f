"""Network configurations: the plugin config and conflist models, loading them from bytes
with CNI errors that name the key, and building a plugin's config for one invocation
(cniVersion, name, runtimeConfig from capabilities, prevResult; CNI spec 1.1 section 3).

Unknown keys are preserved: the spec says runtimes and plugins must pass them through.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import msgspec

from cni import decode, skel, version
from cni.errors import CniError, Code
from cni.result import DNS, Result, convert

C = TypeVar("C", bound=msgspec.Struct)

# GC's extra key (CNI 1.1): the attachments still in use, [{"containerID": ..., "ifname": ...}].
VALID_ATTACHMENTS = "cni.dev/valid-attachments"
_UNSET: Any = msgspec.UNSET


class NetConf(msgspec.Struct, frozen=True, kw_only=True):
    """The keys every plugin config may carry; plugins subclass it with their own. Other
    keys are not kept here: whoever passes a config on passes the document itself."""

    cni_version: str = msgspec.field(default="", name="cniVersion")
    cni_versions: list[str] | None = msgspec.field(default=None, name="cniVersions")
    name: str = ""
    type: str = ""
    capabilities: dict[str, bool] = {}
    ipam: dict[str, Any] | None = None
    dns: DNS | None = None
    args: dict[str, Any] | None = None
    runtime_config: dict[str, Any] = msgspec.field(default_factory=dict, name="runtimeConfig")
    prev_result: dict[str, Any] | None = msgspec.field(default=None, name="prevResult")
    # GC (CNI 1.1): unset when the key is absent, which is not the same as an empty list.
    valid_attachments: Any = msgspec.field(default=_UNSET, name=VALID_ATTACHMENTS)

    @property
    def version(self) -> str:
        return version.negotiate(self.cni_version, self.cni_versions)

    def previous_result(self) -> Result | None:
        """`prevResult` parsed (it is in this config's cniVersion)."""
        if self.prev_result is None:
            return None
        return Result.from_wire({"cniVersion": self.version, **self.prev_result}, where="prevResult")

    def given_valid_attachments(self, missing: Any = None) -> Any:
        """`cni.dev/valid-attachments` as given, or `missing` when the key is absent."""
        return missing if self.valid_attachments is msgspec.UNSET else self.valid_attachments


class Conflist(msgspec.Struct, frozen=True, kw_only=True):
    """A network configuration list (`.conflist`): a chain of plugins under one name."""

    cni_version: str = msgspec.field(default="", name="cniVersion")
    cni_versions: list[str] | None = msgspec.field(default=None, name="cniVersions")
    name: str
    disable_check: bool = msgspec.field(default=False, name="disableCheck")
    disable_gc: bool = msgspec.field(default=False, name="disableGC")
    load_only_inlined_plugins: bool = msgspec.field(default=False, name="loadOnlyInlinedPlugins")
    plugins: Annotated[list[dict[str, Any]], msgspec.Meta(min_length=1)]

    @property
    def version(self) -> str:
        return version.negotiate(self.cni_version, self.cni_versions)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], *, where: str = "") -> Conflist:
        """A conflist document (as `to_doc` or a `.conflist` file has it) parsed. libcni
        also takes `"true"`/`"false"` strings for its booleans."""
        flags = ("disableCheck", "disableGC", "loadOnlyInlinedPlugins")
        if any(isinstance(doc.get(key), str) for key in flags):
            doc = {**doc, **{key: _libcni_bool(doc[key], key) for key in flags if isinstance(doc.get(key), str)}}
        return decode.decode(cls, doc, where=where)

    def to_doc(self) -> dict[str, Any]:
        """The conflist as a document (its wire keys; `cniVersions` only when set)."""
        return decode.dump(self, omit=("cniVersions",))

    def replace(self, **changes: Any) -> Conflist:
        return msgspec.structs.replace(self, **changes)


def _libcni_bool(value: str, key: str) -> bool:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise CniError(Code.INVALID_NETWORK_CONFIG, f"{key}: invalid value {value!r} (a boolean, or \"true\"/\"false\")")


def load_conf(model: type[C], stdin: bytes | str | Mapping[str, Any], *, casefold: bool = False) -> C:
    """Parse a config into `model`, reporting problems as CNI errors naming the key."""
    doc = dict(stdin) if isinstance(stdin, Mapping) else skel.load_json(stdin)
    return decode.decode(model, doc, casefold=casefold)


def runtime_config(capabilities: Mapping[str, bool], capability_args: Mapping[str, Any]) -> dict[str, Any]:
    """The runtimeConfig a plugin gets: only the capabilities it declares (spec section 3)."""
    return {key: value for key, value in capability_args.items() if capabilities.get(key)}


def plugin_config(
    plugin: Mapping[str, Any],
    *,
    name: str,
    cni_version: str,
    capability_args: Mapping[str, Any] | None = None,
    prev_result: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One plugin's execution config, derived from a conflist entry (CNI spec section 3):
    the entry as written, with `name` and `cniVersion` inserted, `runtimeConfig` holding the
    capability args the plugin declares, `prevResult` in `cni_version`'s shape, and
    `capabilities` (and `cniVersions`) removed. Every other key passes through unchanged."""
    conf = dict(plugin)
    conf["name"] = name
    conf["cniVersion"] = cni_version
    conf.pop("cniVersions", None)
    caps = conf.pop("capabilities", None)
    if capability_args and isinstance(caps, dict):
        selected = runtime_config(caps, capability_args)
        if selected:
            existing = conf.get("runtimeConfig")
            conf["runtimeConfig"] = {**(existing if isinstance(existing, dict) else {}), **selected}
    if prev_result is not None:
        prev = dict(prev_result)
        named = prev.pop("cniVersion", None)
        if named is not None and named != cni_version:
            prev = convert({**prev, "cniVersion": named}, cni_version, where="prevResult")
            prev.pop("cniVersion", None)
        conf["prevResult"] = prev
    else:
        conf.pop("prevResult", None)
    return conf


def parse_network(raw: bytes | str | Mapping[str, Any], *, where: str = "config") -> Conflist:
    """A single plugin config or a conflist, always as a Conflist (a single config becomes a
    one-plugin list, as libcni's ConfListFromConf does)."""
    doc = dict(raw) if isinstance(raw, Mapping) else _json_object(raw, where=where)
    if "plugins" not in doc:
        plugin = {k: v for k, v in doc.items() if k not in ("cniVersion", "cniVersions", "name")}
        doc = {k: doc[k] for k in ("cniVersion", "cniVersions", "name") if k in doc} | {"plugins": [plugin]}
        if "type" not in plugin:
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: type: missing plugin type")
    conflist = Conflist.from_doc(doc)
    skel.validate_network_name(conflist.name)
    for index, plugin in enumerate(conflist.plugins):
        if not isinstance(plugin.get("type"), str) or not plugin["type"]:
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: plugins.{index}.type: missing plugin type")
    try:
        conflist.version  # noqa: B018 - checks the version is one we speak
    except CniError as err:
        raise err.prefixed(where) from err
    return conflist


def _json_object(raw: bytes | str, *, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CniError(Code.DECODING_FAILURE, f"{where}: not valid JSON", str(exc)) from exc
    if not isinstance(doc, dict):
        raise CniError(Code.DECODING_FAILURE, f"{where}: not a JSON object")
    return doc
