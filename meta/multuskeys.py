"""Keys of Multus's thick mode (its daemon config and its shim's conflist entry), mapped
onto netplex's: each is an alias where the meaning matches, or refused with a message
saying what replaces it. None is ever ignored silently.

  socketDir        the directory of the daemon's socket: netplex's socket is
                   `<socketDir>/netplex.sock` (daemon: socketPath; conflist: daemonSocket)
  metricsPort      the daemon's Prometheus port: metricsAddress ":<port>"
  chrootDir        exec delegates chrooted into the host's root: the daemon key of the same
                   name and meaning (meta/daemon_config.py; node launch work), passed through
  multusConfigFile "auto" is what `netplex install` always does (it writes the conflist
                   from the node's cluster network): accepted; a fixed file is refused
  cniConfigDir     where the runtime's CNI configs live: `netplex install --conf-dir`
                   replaces it; refused in a daemon or plugin config

Standard library only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

SOCKET_NAME = "netplex.sock"
THICK_KEYS = frozenset({"socketDir", "metricsPort", "chrootDir", "multusConfigFile", "cniConfigDir"})


class RefusedKey(ValueError):
    """A Multus key netplex has no equivalent of here; the message says what replaces it."""


def daemon_aliases(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A daemon config with Multus's thick keys turned into netplex's (or RefusedKey)."""
    out = dict(doc)
    if "socketDir" in out:
        out.setdefault("socketPath", _socket(out.pop("socketDir"), "socketDir"))
    if "metricsPort" in out:
        port = out.pop("metricsPort")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise RefusedKey("metricsPort: want a port number (netplex's key: metricsAddress \"host:port\")")
        out.setdefault("metricsAddress", f":{port}")
    _multus_config_file(out)
    if "cniConfigDir" in out:
        raise RefusedKey(
            "cniConfigDir: netplex's daemon neither reads nor writes the CNI config directory; "
            "`netplex install --conf-dir DIR` does (as Multus's thick entrypoint); remove the key"
        )
    # chrootDir: the daemon's own key with Multus's meaning; daemon_config reads it.
    return out


def plugin_aliases(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A plugin (conflist entry) config with Multus shim keys turned into netplex's."""
    out = dict(doc)
    if "socketDir" in out:
        out.setdefault("daemonSocket", _socket(out.pop("socketDir"), "socketDir"))
    _multus_config_file(out)
    for key in ("metricsPort", "chrootDir", "cniConfigDir"):
        if key in out:
            raise RefusedKey(
                f"{key}: a key of Multus's thick daemon config, not of the plugin's; put it (or netplex's "
                f"equivalent: metricsAddress, chrootDir, `netplex install --conf-dir`) in netplex daemon's config"
            )
    return out


def daemon_socket(doc: Mapping[str, Any]) -> str:
    """The shim's socket from `daemonSocket`, else Multus's `socketDir` (standard library
    only: the `netplex` entry point calls it before importing anything else)."""
    value = doc.get("daemonSocket")
    if isinstance(value, str) and value:
        return value
    directory = doc.get("socketDir")
    return os.path.join(directory, SOCKET_NAME) if isinstance(directory, str) and directory.startswith("/") else ""


def _socket(directory: Any, key: str) -> str:
    if not isinstance(directory, str) or not directory.startswith("/") or "\0" in directory:
        raise RefusedKey(f"{key}: want an absolute directory")
    return os.path.join(directory, SOCKET_NAME)


def _multus_config_file(out: dict[str, Any]) -> None:
    if "multusConfigFile" not in out:
        return
    value = out.pop("multusConfigFile")
    if value != "auto":
        raise RefusedKey(
            f"multusConfigFile: {value!r}: netplex always writes its conflist from the node's cluster network "
            "(Multus's \"auto\"); to add keys to it use `netplex install --config FILE`"
        )
