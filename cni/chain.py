"""Running a conflist as a chain (libcni's AddNetworkList and friends): ADD in order with
each result as the next plugin's prevResult, DEL in reverse trying every plugin, CHECK and
GC and STATUS on each. The final result is converted to the list's version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cni import config, invoke, skel
from cni.errors import CniError, Code, MultiError
from cni.result import Result


def add(
    network: config.Conflist,
    args: skel.CmdArgs,
    *,
    capability_args: Mapping[str, Any] | None = None,
    builtins: invoke.Builtins | None = None,
    timeout: float | None = None,
) -> Result:
    cni_version = network.version
    prev: dict[str, Any] | None = None
    for plugin in network.plugins:
        conf = config.plugin_config(
            plugin, name=network.name, cni_version=cni_version,
            capability_args=capability_args, prev_result=prev,
        )
        prev = invoke.invoke(conf, args.replace(command="ADD"), builtins=builtins, timeout=timeout)
        if prev is None:
            raise CniError(Code.DECODING_FAILURE, f"plugin {plugin.get('type')!r} returned no result")
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
    """DEL every plugin in reverse order; every plugin is tried, failures are aggregated."""
    errors: list[CniError] = []
    for plugin in reversed(network.plugins):
        conf = config.plugin_config(
            plugin, name=network.name, cni_version=network.version,
            capability_args=capability_args, prev_result=prev_result,
        )
        try:
            invoke.invoke(conf, args.replace(command="DEL"), builtins=builtins, timeout=timeout)
        except CniError as err:
            errors.append(err)
    if errors:
        raise errors[0] if len(errors) == 1 else MultiError(errors)


def check(
    network: config.Conflist,
    args: skel.CmdArgs,
    *,
    prev_result: Mapping[str, Any],
    capability_args: Mapping[str, Any] | None = None,
    builtins: invoke.Builtins | None = None,
    timeout: float | None = None,
) -> None:
    if network.disable_check:
        return
    for plugin in network.plugins:
        conf = config.plugin_config(
            plugin, name=network.name, cni_version=network.version,
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
    (GC's `cni.dev/valid-attachments`)."""
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
    if errors:
        raise errors[0] if len(errors) == 1 else MultiError(errors)
