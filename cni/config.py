"""Network configurations: the plugin config and conflist models, loading them from bytes
with CNI errors that name the key, and building a plugin's config for one invocation
(cniVersion, name, runtimeConfig from capabilities, prevResult; CNI spec 1.1 section 3).

Unknown keys are preserved: the spec says runtimes and plugins must pass them through.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cni import skel, version
from cni.errors import CniError, Code
from cni.result import DNS, Result, convert

C = TypeVar("C", bound=BaseModel)

# GC's extra key (CNI 1.1): the attachments still in use, [{"containerID": ..., "ifname": ...}].
VALID_ATTACHMENTS = "cni.dev/valid-attachments"


class NetConf(BaseModel):
    """The keys every plugin config may carry; plugins subclass it with their own."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    cni_version: str = Field("", alias="cniVersion")
    cni_versions: list[str] | None = Field(None, alias="cniVersions")
    name: str = ""
    type: str = ""
    capabilities: dict[str, bool] = {}
    ipam: dict[str, Any] | None = None
    dns: DNS | None = None
    args: dict[str, Any] | None = None
    runtime_config: dict[str, Any] = Field({}, alias="runtimeConfig")
    prev_result: dict[str, Any] | None = Field(None, alias="prevResult")

    @property
    def version(self) -> str:
        return version.negotiate(self.cni_version, self.cni_versions)

    def previous_result(self) -> Result | None:
        """`prevResult` parsed (it is in this config's cniVersion)."""
        if self.prev_result is None:
            return None
        return Result.from_wire({"cniVersion": self.version, **self.prev_result}, where="prevResult")


class Conflist(BaseModel):
    """A network configuration list (`.conflist`): a chain of plugins under one name."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    cni_version: str = Field("", alias="cniVersion")
    cni_versions: list[str] | None = Field(None, alias="cniVersions")
    name: str
    disable_check: bool = Field(False, alias="disableCheck")
    disable_gc: bool = Field(False, alias="disableGC")
    load_only_inlined_plugins: bool = Field(False, alias="loadOnlyInlinedPlugins")
    plugins: list[dict[str, Any]] = Field(min_length=1)

    @property
    def version(self) -> str:
        return version.negotiate(self.cni_version, self.cni_versions)


def load_conf(model: type[C], stdin: bytes | str | Mapping[str, Any]) -> C:
    """Parse a config into `model`, reporting problems as CNI errors naming the key."""
    try:
        if isinstance(stdin, Mapping):
            return model.model_validate(dict(stdin))
        return model.model_validate_json(stdin)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise CniError(Code.DECODING_FAILURE, "config is not valid JSON", str(exc)) from exc
        if first["type"] == "model_type" and not first["loc"]:
            raise CniError(Code.DECODING_FAILURE, "config is not a JSON object", str(exc)) from exc
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: {first['msg']}", str(exc)) from exc


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
    conflist = load_conf(Conflist, doc)
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
