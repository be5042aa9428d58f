"""IPAM for the link delegates: run the IPAM plugin a network config names, as the
reference plugins' `pkg/ipam` does, and hand back its result or its error.

The IPAM plugin gets the parent's whole network config on stdin, the bytes the parent
itself was given (`args.stdin`, as the reference plugins pass `args.StdinData`; the spec's
rule: IPAM plugins read `ipam` from the same config), and the parent's CNI_* parameters;
`conf`, that config parsed, names the IPAM type and the result's version. A built-in
type (`host-local`, `static`, or their `netplex-` names) runs in-process through
`delegates.registry`; any other type is exec'd from CNI_PATH via `cni.invoke`. Errors keep
the IPAM plugin's code, with `ipam "<type>": ` before the message.

    allocated = ipam.add(conf, args)
    undo.callback(ipam.delete, conf, args)
    result = ipam.on_interface(allocated, interfaces, index=2)
    iface.configure(args.netns, args.ifname, result, iface_index=2, nodad=not conf.enabledad)

Nothing here touches the kernel (that is `delegates.ipam.iface`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec

from cni import skel
from cni.config import NetConf
from cni.errors import CniError, Code
from cni.invoke import Builtins, exec_plugin, find_plugin
from cni.result import Interface, Result
from delegates import registry

__all__ = ["add", "check", "delete", "gc", "ipam_type", "on_interface", "status"]


def add(
    conf: NetConf,
    args: skel.CmdArgs,
    *,
    builtins: Builtins | None = registry.lookup,
    timeout: float | None = None,
) -> Result:
    """Run the IPAM plugin's ADD; its result (addresses with no interface index yet)."""
    doc = _run("ADD", conf, args, builtins=builtins, timeout=timeout)
    plugin_type = ipam_type(conf)
    if doc is None:
        raise CniError(Code.DECODING_FAILURE, f'ipam "{plugin_type}": ADD printed no result')
    return Result.from_wire(doc, where=f'ipam "{plugin_type}" result').with_version(conf.version)


def delete(
    conf: NetConf,
    args: skel.CmdArgs,
    *,
    builtins: Builtins | None = registry.lookup,
    timeout: float | None = None,
) -> None:
    """Run the IPAM plugin's DEL (releasing the attachment's addresses)."""
    _run("DEL", conf, args, builtins=builtins, timeout=timeout)


def check(
    conf: NetConf,
    args: skel.CmdArgs,
    *,
    builtins: Builtins | None = registry.lookup,
    timeout: float | None = None,
) -> None:
    """Run the IPAM plugin's CHECK (the config's prevResult goes along)."""
    _run("CHECK", conf, args, builtins=builtins, timeout=timeout)


def status(
    conf: NetConf,
    args: skel.CmdArgs,
    *,
    builtins: Builtins | None = registry.lookup,
    timeout: float | None = None,
) -> None:
    """Run the IPAM plugin's STATUS (CNI 1.1): error 50/51 when it cannot serve ADDs."""
    _run("STATUS", conf, args, builtins=builtins, timeout=timeout)


def gc(
    conf: NetConf,
    args: skel.CmdArgs,
    *,
    builtins: Builtins | None = registry.lookup,
    timeout: float | None = None,
) -> None:
    """Run the IPAM plugin's GC (CNI 1.1); `cni.dev/valid-attachments` goes along in the config."""
    _run("GC", conf, args, builtins=builtins, timeout=timeout)


def ipam_type(conf: NetConf) -> str:
    """The IPAM plugin type the config names (error 7 when there is none)."""
    if conf.ipam is None:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "ipam: missing IPAM configuration")
    plugin_type = conf.ipam.get("type")
    if not isinstance(plugin_type, str) or not plugin_type:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "ipam.type: missing IPAM plugin type")
    return plugin_type


def on_interface(result: Result, interfaces: Sequence[Interface], *, index: int) -> Result:
    """The IPAM result as the link plugin reports it: its `interfaces`, and every address
    pointing at `interfaces[index]` (IPAM plugins leave the index unset)."""
    if not 0 <= index < len(interfaces):
        raise ValueError(f"interface index {index} out of range for {len(interfaces)} interfaces")
    ips = [msgspec.structs.replace(ip, interface=index) for ip in result.ips]
    return msgspec.structs.replace(result, interfaces=list(interfaces), ips=ips)


def _run(
    command: str,
    conf: NetConf,
    args: skel.CmdArgs,
    *,
    builtins: Builtins | None,
    timeout: float | None,
) -> dict[str, Any] | None:
    plugin_type = ipam_type(conf)
    call = args.replace(command=command)  # the parent's config as given: its stdin
    try:
        builtin = builtins(plugin_type) if builtins is not None else None
        if builtin is None:
            return exec_plugin(find_plugin(plugin_type, args.path), call, timeout=timeout)
        # In-process, the same checks and dispatch as the executable, and a JSON round trip
        # so both paths return the same values. (cni.invoke.invoke would take the parent's
        # `type` from the config, so it cannot be used as is.)
        skel.parse_env(call.env(), call.stdin)
        answer = skel.dispatch(builtin, call)
        return json.loads(json.dumps(answer)) if answer is not None else None
    except CniError as err:
        raise err.prefixed(f'ipam "{plugin_type}"') from err
