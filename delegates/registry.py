"""The built-in delegates by CNI type, for running them in-process through `cni.invoke`.

Modules load on first use, so a pod that needs only bridge never imports macvlan."""

from __future__ import annotations

import importlib

from cni import skel

_MODULES = {
    "bridge": "delegates.bridge.plugin",
    "macvlan": "delegates.macvlan.plugin",
    "ipvlan": "delegates.ipvlan.plugin",
    "host-local": "delegates.ipam.host_local",
    "static": "delegates.ipam.static",
    "host-device": "delegates.hostdevice.plugin",
}
# Types that exist only under their netplex name (no plain alias to shadow).
_NETPLEX_ONLY = {"netplex-ipam": "delegates.ipam.cluster.plugin"}
BUILTIN_TYPES = frozenset(_MODULES) | frozenset(f"netplex-{name}" for name in _MODULES) | frozenset(_NETPLEX_ONLY)


def lookup(plugin_type: str) -> skel.Plugin | None:
    """The in-process plugin for `plugin_type` (its plain or `netplex-` name), or None."""
    module = _NETPLEX_ONLY.get(plugin_type) or _MODULES.get(plugin_type.removeprefix("netplex-"))
    if module is None:
        return None
    plugin = getattr(importlib.import_module(module), "PLUGIN", None)
    return plugin if isinstance(plugin, skel.Plugin) else None
