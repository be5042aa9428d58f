"""The `netplex` executable: the CNI meta-plugin when CNI_COMMAND is set, else the CLI.

On the CNI path it reads stdin first and peeks at it without `json` (meta.rawjson):
VERSION gets its constant answer at once; a config naming `daemonSocket` is copied as
bytes to `netplex daemon` and the answer copied back (meta.fastshim), with the full shim
(meta/shim.py, standard library only) as the fallback when the daemon is not there to
answer. Otherwise the standard-library skeleton runs and imports the meta-plugin only for
real work. The CLI's modules are never imported on the CNI path, and all of this works
under `python -I -S`."""

from __future__ import annotations

import os
import sys

from meta import fastshim, rawjson

MAX_STDIN_BYTES = 4 * 1024 * 1024  # as cni.skel: one byte more is read, so it can refuse
PEEKED_KEYS = ("daemonSocket", "cniVersion", "addTimeout")


def main() -> None:
    if os.environ.get("CNI_COMMAND"):
        sys.exit(_cni())
    from meta import cli

    sys.exit(cli.main(sys.argv[1:]))


def _cni() -> int:
    """The CNI path. Imports only `os`, `sys` and two import-free modules until it knows
    the call needs more: VERSION is a constant, daemon mode copies bytes (meta.fastshim)."""
    command = os.environ.get("CNI_COMMAND")
    try:
        raw = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    except OSError:
        raw = None  # the skeleton reads again and reports the error
    if raw is not None and len(raw) <= MAX_STDIN_BYTES:
        peeked = rawjson.peek(raw, PEEKED_KEYS)
        if command == "VERSION":
            if peeked is not None:
                return fastshim.write(fastshim.version_answer(peeked.get("cniVersion")), 0)
        else:
            socket_path = peeked.get("daemonSocket") if peeked is not None else daemon_socket(raw)
            if isinstance(socket_path, str) and socket_path:
                code = fastshim.forward(socket_path, raw, peeked, os.environ) if peeked is not None else None
                if code is not None:
                    return code
                from meta import shim

                return shim.run(socket_path, raw, environ=os.environ)
            if command == "DEL" and nothing_recorded(raw):
                return 0
    import io

    from cni import skel

    def load_plugin() -> skel.Plugin:
        from meta import plugin

        return plugin.PLUGIN

    return skel.run(load_plugin, stdin=io.BytesIO(raw) if raw is not None else None)


def daemon_socket(raw: bytes) -> str:
    """The config's `daemonSocket`, or "" when it names none (or is not a JSON object:
    the plugin itself reports that)."""
    if len(raw) > MAX_STDIN_BYTES:
        return ""
    import json

    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(doc, dict):
        return ""
    from meta import multuskeys  # standard library only

    return multuskeys.daemon_socket(doc)


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
        if not cachepath.surely_absent(cni_dir, args.container_id, args.ifname):
            return False
        # A sandbox Multus attached before the switch: its record is <multusCacheDir>/<ID>.
        multus_dir = conf.get("multusCacheDir", cachepath.DEFAULT_MULTUS_CACHE_DIR)
        return not any(
            isinstance(directory, str) and os.path.isfile(os.path.join(directory, args.container_id))
            for directory in (multus_dir, cni_dir)
        )
    except CniError:
        return False
