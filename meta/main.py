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
        if os.environ.get("CNI_COMMAND") == "DEL" and nothing_recorded(raw):
            return 0
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


def nothing_recorded(raw: bytes) -> bool:
    """True for a valid DEL of a sandbox netplex has no record of (containerd's second
    DEL, on RemovePodSandbox, always is one): the meta-plugin's DEL would find no cache
    file and succeed, so answer it here without importing pydantic or pyroute2. Anything
    the skeleton would refuse goes the full way, to get its error."""
    from cni import skel
    from cni.errors import CniError
    from meta import cachepath

    try:
        args = skel.parse_env(os.environ, raw)
        conf = skel.load_json(raw)
        skel.config_version(conf)
        skel.validate_network_name(conf.get("name"))
        cni_dir = conf.get("cniDir", cachepath.DEFAULT_CNI_DIR)
        if not isinstance(cni_dir, str) or not cni_dir.startswith("/"):
            return False
        return cachepath.surely_absent(cni_dir, args.container_id, args.ifname)
    except CniError:
        return False


def _load_plugin() -> skel.Plugin:
    from meta import plugin

    return plugin.PLUGIN
