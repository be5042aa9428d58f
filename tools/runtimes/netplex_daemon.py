"""`netplex daemon` for a lane's daemon mode: started in the lane's node namespace, with
its config and socket in the lane's work directory, and stopped with SIGTERM.

The config carries only the daemon's keys (socketPath, nodeName, concurrency) and the log
level: with no kubeconfig the daemon reads networks from the local manifest directory
each request's config names (`localNetworks`, from the conflist, as in thin mode), and
every other meta-plugin key comes from the conflist the runtime loaded, through the shim.

`stop()` fails when the daemon did not exit with 0 or left its socket behind (the
config snapshot beside it stays by design: the shim's DEL fallback reads it).
`served()` reads the daemon's log for the CNI requests it answered, so a test can show
that the runtime's calls really went through the daemon.

Standard library only (`meta.shim`, the shim's own client, is stdlib-only by contract).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from meta import shim
from tools.runtimes import plugins
from tools.runtimes.node import Node

NODE_NAME = "nprt-node"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
# The daemon's INFO line per ADD/DEL: "<verb> <container id> <namespace/pod>: ok in 1.2 ms"
_SERVED = re.compile(r": (ADD|DEL|CHECK|GC|STATUS) (\S+) \S+: (ok|error \d+)")


class NetplexDaemon:
    """One `netplex daemon`, in `node`'s network namespace, with its files in `workdir`."""

    def __init__(self, workdir: Path, node: Node, *, concurrency: int = 4) -> None:
        self.workdir = workdir
        self.node = node
        self.concurrency = concurrency
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / "netplex.sock"

    @property
    def config(self) -> Path:
        return self.workdir / "daemon.json"

    @property
    def log(self) -> Path:
        return self.workdir / "daemon.log"

    def start(self, *, timeout: float = START_TIMEOUT) -> None:
        """Write the config, start the daemon and wait until it is ready (GET /readyz)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps({
            "socketPath": str(self.socket),
            "nodeName": NODE_NAME,
            "concurrency": self.concurrency,
            "logLevel": "debug",
        }))
        # No CNI_* or Kubernetes variable of ours may reach it: local mode, whatever the host.
        environ = {key: value for key, value in os.environ.items() if not key.startswith(("CNI_", "KUBERNETES_"))}
        self._log = open(self.log, "ab")  # noqa: SIM115 - lives as long as the daemon
        self._process = subprocess.Popen(
            self.node.command([str(plugins.netplex_path()), "daemon", "--config", str(self.config)]),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=environ,
            start_new_session=True,
        )
        client = shim.Client(str(self.socket), timeout=2.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"netplex daemon exited with {self._process.returncode}:\n{self.log_tail()}")
            if client.ready():
                return
            time.sleep(0.05)
        raise TimeoutError(f"netplex daemon not ready within {timeout:g}s:\n{self.log_tail()}")

    def stop(self, *, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (SIGKILL after `timeout`); raises unless it exited 0 and removed its socket."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)  # nsenter execs the daemon: same pid
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout)
                    raise RuntimeError(f"netplex daemon ignored SIGTERM for {timeout:g}s:\n{self.log_tail()}") from None
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
        if process.returncode != 0:
            raise RuntimeError(f"netplex daemon exited with {process.returncode}:\n{self.log_tail()}")
        if self.socket.exists():
            raise RuntimeError(f"netplex daemon left its socket {self.socket} behind")

    def served(self, container_id: str) -> list[str]:
        """The CNI verbs the daemon answered for `container_id`, oldest first (from its log)."""
        return [
            match.group(1)
            for match in (_SERVED.search(line) for line in self._log_lines())
            if match is not None and match.group(2) == container_id
        ]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self._log_lines()[-lines:])

    def _log_lines(self) -> list[str]:
        try:
            return self.log.read_text(errors="replace").splitlines()
        except OSError:
            return []
