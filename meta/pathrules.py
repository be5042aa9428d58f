"""Path rules for every path a config names: the meta config's and the daemon config's
directory and file keys, and the IPAM data dirs of the networks a pod attaches.

A path key holds an absolute path without NUL, or (for the optional keys) nothing: a
relative `cniDir` would put the cache under whatever directory the runtime started the
plugin in, and a DEL started elsewhere would find nothing and leak every attachment. An
IPAM `dataDir` is normalised (`/a/b/../c` is `/a/c`) and, when the meta config names
`ipamRoots`, must lie under one of them. Errors are CNI error 7 naming the key.
Standard library only; no I/O.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from cni.errors import CniError, Code

__all__ = [
    "OPTIONAL_PATH_KEYS", "REQUIRED_PATH_KEYS", "check_config_paths", "check_ipam_data_dirs", "check_path",
    "check_plan", "ipam_data_dirs", "path_problem", "under",
]

# Keys that must always name a path (they have defaults), and keys that may be empty.
REQUIRED_PATH_KEYS = ("cniDir", "confDir", "binDir", "localNetworks")
OPTIONAL_PATH_KEYS = (
    "kubeconfig", "logFile", "readinessindicatorfile", "readinessIndicatorFile", "daemonSocket", "socketPath",
)
MAX_PATH_BYTES = 4095  # PATH_MAX - 1


def path_problem(value: Any, *, optional: bool) -> str | None:
    """What is wrong with `value` as a path key, or None when it is fine."""
    if not isinstance(value, str):
        return "want a string"
    if not value:
        return None if optional else "want an absolute path, not an empty string"
    if "\0" in value:
        return "holds a NUL character"
    if not value.startswith("/"):
        return f"{value[:200]!r} is not an absolute path"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{value[:200]!a} is not valid UTF-8"
    if size > MAX_PATH_BYTES:
        return f"longer than {MAX_PATH_BYTES} bytes"
    return None


def check_path(key: str, value: Any, *, optional: bool) -> None:
    problem = path_problem(value, optional=optional)
    if problem:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{key}: {problem}")


def check_config_paths(doc: Mapping[str, Any]) -> None:
    """Every path key `doc` sets (a meta config or a daemon config's meta keys)."""
    for key in REQUIRED_PATH_KEYS:
        if key in doc:
            check_path(key, doc[key], optional=False)
    for key in OPTIONAL_PATH_KEYS:
        if key in doc and doc[key] is not None:
            check_path(key, doc[key], optional=True)
    roots = doc.get("ipamRoots")
    if roots is not None:
        if not isinstance(roots, list):
            raise CniError(Code.INVALID_NETWORK_CONFIG, "ipamRoots: want a list of absolute paths")
        for index, root in enumerate(roots):
            check_path(f"ipamRoots.{index}", root, optional=False)


def under(path: str, roots: Iterable[str]) -> bool:
    """True when normalised `path` is one of `roots` or inside one."""
    normal = posixpath.normpath(path)
    for root in roots:
        base = posixpath.normpath(root)
        if normal == base or normal.startswith(base.rstrip("/") + "/"):
            return True
    return False


def check_ipam_data_dirs(network: str, conflist: Mapping[str, Any], roots: Iterable[str]) -> None:
    """Each plugin's `ipam.dataDir` of `conflist` lies under `roots` (when any are set)."""
    roots = tuple(roots)
    if not roots:
        return
    for data_dir in ipam_data_dirs(conflist):
        if not under(data_dir, roots):
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"network {network!r}: ipam.dataDir: {data_dir[:200]!r} is outside the configured ipamRoots",
            )


def check_plan(roots: Iterable[str], plan: Iterable[Any]) -> None:
    """Every planned attachment's (`.network`, `.conflist` model) IPAM data dirs."""
    roots = tuple(roots)
    if not roots:
        return
    for attachment in plan:
        check_ipam_data_dirs(attachment.network, attachment.conflist.to_doc(), roots)


def ipam_data_dirs(conflist: Mapping[str, Any]) -> list[str]:
    """The `ipam.dataDir` values a conf or conflist names (absolute ones only)."""
    plugins = conflist.get("plugins")
    confs = plugins if isinstance(plugins, list) else [conflist]
    found = []
    for conf in confs:
        ipam = conf.get("ipam") if isinstance(conf, Mapping) else None
        data_dir = ipam.get("dataDir") if isinstance(ipam, Mapping) else None
        if isinstance(data_dir, str) and data_dir.startswith("/"):
            found.append(posixpath.normpath(data_dir))
    return found
