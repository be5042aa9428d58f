"""The `netplex` executable: the CNI meta-plugin when CNI_COMMAND is set, else the CLI.

On the CNI path it reads stdin first and looks (with `json`, nothing else) for
`daemonSocket`: when the config names one, the request goes to the thin shim
(meta/shim.py), which imports the standard library only and forwards it to `netplex
daemon`. Otherwise the standard-library skeleton answers VERSION itself and imports the
meta-plugin only for real work. The CLI's modules are never imported on the CNI path."""

from __future__ import annotations

import io
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cni import skel

MAX_STDIN_BYTES = 4 * 1024 * 1024  # as cni.skel: one byte more is read, so it can refuse


def main() -> None:
    if os.environ.get("CNI_COMMAND"):
        sys.exit(_cni())
    from meta import cli

    sys.exit(cli.main(sys.argv[1:]))


def _cni() -> int:
    try:
        raw = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    except OSError:
        raw = None  # the skeleton reads again and reports the error
    if raw is not None and os.environ.get("CNI_COMMAND") != "VERSION":
        socket_path = daemon_socket(raw)
        if socket_path:
            from meta import shim

            return shim.run(socket_path, raw, environ=os.environ)
    from cni import skel

    return skel.run(_load_plugin, stdin=io.BytesIO(raw) if raw is not None else None)


def daemon_socket(raw: bytes) -> str:
    """The config's `daemonSocket`, or "" when it names none (or is not a JSON object:
    the plugin itself reports that)."""
    if len(raw) > MAX_STDIN_BYTES:
        return ""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return ""
    value = doc.get("daemonSocket") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else ""


def _load_plugin() -> skel.Plugin:
    from meta import plugin

    return plugin.PLUGIN
