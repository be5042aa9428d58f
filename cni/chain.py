"""Running a conflist as a chain (libcni's AddNetworkList and friends, CNI spec section 3):
ADD in order with each result as the next plugin's prevResult, DEL in reverse trying every
plugin, CHECK in order, STATUS and GC on each. Every plugin is spoken to in the list's
version, and so is every prevResult and the final result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cni import config, invoke, skel, version
from cni.errors import CniError, Code, MultiError
from cni.result import Result, convert


def add(
    network: config.Conflist,
    args: skel.CmdArgs,
    *,
    capability_args: Mapping[str, Any] | None = None,
    builtins: invoke.Builtins | None = None,
    timeout: float | None = None,
) -> Result:
    """ADD every plugin in order; the first failure stops the chain and is raised as is
    (undoing what was added is the caller's DEL)."""
    cni_version = network.version
    prev: dict[str, Any] | None = None
    for index, plugin in enumerate(network.plugins):
        conf = config.plugin_config(
            plugin, name=network.name, cni_version=cni_version,
            capability_args=capability_args, prev_result=prev,
        )
        answer = invoke.invoke(conf, args.replace(command="ADD"), builtins=builtins, timeout=timeout)
        where = f"result of plugin {index} ({plugin.get('type')!r}) of network {network.name!r}"
        if answer is None:
            raise CniError(Code.DECODING_FAILURE, f"{where}: no result")
        # A plugin that answers in another version is still handed on in the list's.
        prev = convert(answer, cni_version, where=where)
    if prev is None:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"network {network.name!r}: plugins: the list is empty")
    return Result.from_wire(prev, where=f"result of network {network.name!r}")


def delete(
    network: config.Conflist,
    args: skel.CmdArgs,
    *,
    prev_result: Mapping[str, Any] | None = None,
    capability_args: Mapping[str, Any] | None = None,
    builtins: invoke.Builtins | None = None,
    timeout: float | None = None,
) -> None:
    """DEL every plugin in reverse order; every plugin is tried, failures are aggregated
    (one failure is raised as is, several as a MultiError)."""
    errors: list[CniError] = []
    for plugin in reversed(network.plugins):
        try:
            conf = config.plugin_config(
                plugin, name=network.name, cni_version=network.version,
                capability_args=capability_args, prev_result=prev_result,
            )
            invoke.invoke(conf, args.replace(command="DEL"), builtins=builtins, timeout=timeout)
        except CniError as err:
            errors.append(err)
    _raise_all(errors)


def check(
    network: config.Conflist,
    args: skel.CmdArgs,
    *,
    prev_result: Mapping[str, Any],
    capability_args: Mapping[str, Any] | None = None,
    builtins: invoke.Builtins | None = None,
    timeout: float | None = None,
) -> None:
    """CHECK every plugin in order against the ADD's result; nothing when `disableCheck`.
    A list older than 0.4.0 has no CHECK (error 1, as libcni)."""
    if network.disable_check:
        return
    cni_version = network.version
    if not version.at_least(cni_version, "0.4.0"):
        raise CniError(
            Code.INCOMPATIBLE_VERSION, f"network {network.name!r}: version {cni_version} does not support CHECK"
        )
    for plugin in network.plugins:
        conf = config.plugin_config(
            plugin, name=network.name, cni_version=cni_version,
            capability_args=capability_args, prev_result=prev_result,
        )
        invoke.invoke(conf, args.replace(command="CHECK"), builtins=builtins, timeout=timeout)


def each(
    network: config.Conflist,
    args: skel.CmdArgs,
    *,
    extra: Mapping[str, Any] | None = None,
    builtins: invoke.Builtins | None = None,
    timeout: float | None = None,
) -> None:
    """STATUS or GC (args.command) on every plugin; `extra` keys are added to each config
    (GC's `cni.dev/valid-attachments`, config.VALID_ATTACHMENTS).

    STATUS stops at the first failure; GC tries every plugin and aggregates. Lists older
    than 1.1.0 have neither verb, so both do nothing (as libcni); GC does nothing either
    when the list sets `disableGC`."""
    if args.command not in ("STATUS", "GC"):
        raise ValueError(f"chain.each runs STATUS or GC, not {args.command!r}")
    if not version.at_least(network.version, "1.1.0"):
        return
    if args.command == "GC" and network.disable_gc:
        return
    errors: list[CniError] = []
    for plugin in network.plugins:
        conf = config.plugin_config(plugin, name=network.name, cni_version=network.version)
        conf.update(extra or {})
        try:
            invoke.invoke(conf, args, builtins=builtins, timeout=timeout)
        except CniError as err:
            if args.command == "STATUS":
                raise
            errors.append(err)
    _raise_all(errors)


def _raise_all(errors: list[CniError]) -> None:
    if errors:
        raise errors[0] if len(errors) == 1 else MultiError(errors)
