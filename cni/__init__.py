"""netplex's CNI protocol library: models, versions, errors, the plugin skeleton, invoking
plugins and chains, atomic state files. It knows neither Kubernetes nor netlink.

Names are loaded on first use, so `from cni import skel` (VERSION's path) stays free of
pydantic. `invoke` is the submodule `cni.invoke` (call `cni.invoke.invoke(...)`): a
package attribute cannot be both the module and its function without `from cni import
invoke` depending on import order.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Code": "cni.errors",
    "CniError": "cni.errors",
    "MultiError": "cni.errors",
    "SUPPORTED_VERSIONS": "cni.version",
    "CURRENT_VERSION": "cni.version",
    "CmdArgs": "cni.skel",
    "Plugin": "cni.skel",
    "run_plugin": "cni.skel",
    "parse_cni_args": "cni.args",
    "NetConf": "cni.config",
    "Conflist": "cni.config",
    "load_conf": "cni.config",
    "Result": "cni.result",
    "Interface": "cni.result",
    "IPConfig": "cni.result",
    "Route": "cni.result",
    "DNS": "cni.result",
    "invoke": "cni.invoke",
    "atomic_write": "cni.store",
    "Sync": "cni.store",
}

__all__ = [
    "CURRENT_VERSION",
    "DNS",
    "SUPPORTED_VERSIONS",
    "CmdArgs",
    "CniError",
    "Code",
    "Conflist",
    "IPConfig",
    "Interface",
    "MultiError",
    "NetConf",
    "Plugin",
    "Result",
    "Route",
    "Sync",
    "atomic_write",
    "invoke",
    "load_conf",
    "parse_cni_args",
    "run_plugin",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cni' has no attribute {name!r}")
    if module == f"{__name__}.{name}":  # a submodule is exported as itself
        return importlib.import_module(module)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
