"""`netplex probe healthz|readyz [--socket PATH]`: the DaemonSet's liveness and readiness
probes, a GET of the daemon's /healthz or /readyz over its unix socket.

Exit 0 on HTTP 200, 1 otherwise, with the daemon's answer (or why there was none) on
stdout for `kubectl describe`. Standard library and meta.shim's client only: a probe
runs every few seconds and must not start pydantic, kubernetes or pyroute2."""

from __future__ import annotations

import argparse
import sys
from typing import IO

from meta import shim

DEFAULT_SOCKET = "/run/netplex/netplex.sock"
TIMEOUT = 5.0
PATHS = {"healthz": shim.PATH_HEALTHZ, "readyz": shim.PATH_READYZ}


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    probe = commands.add_parser("probe", help="ask the node daemon whether it is alive (healthz) or ready (readyz)")
    probe.add_argument("check", choices=sorted(PATHS))
    probe.add_argument("--socket", default=DEFAULT_SOCKET, help=f"the daemon's socket (default {DEFAULT_SOCKET})")
    probe.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds to wait for the answer")


def run(check: str, *, socket_path: str, timeout: float = TIMEOUT, stdout: IO[str] | None = None) -> int:
    out = sys.stdout if stdout is None else stdout
    client = shim.Client(socket_path, timeout=timeout)
    try:
        status, body = client.call("GET", PATHS[check])
    except (shim.Unreachable, shim.NoAnswer) as err:
        out.write(f"{check}: netplex daemon at {socket_path} is not reachable: {err}\n")
        return 1
    out.write(f"{check}: HTTP {status} {body.decode(errors='replace').strip()}\n")
    return 0 if status == 200 else 1
