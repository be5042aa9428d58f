"""Daemon mode for the meta-plugin scenarios: `DaemonRunner` runs `netplex daemon` in the
throwaway node namespace and drives every CNI call through the real shim (`netplex` with
`daemonSocket` in its config), so each scenario of tests/kube/test_meta_*.py runs in
thin mode and in daemon mode alike (tests/kube/runners.py appends this runner).

The daemon starts on the first call, as a subprocess in the node namespace
(`ip netns exec <node> python -m meta.daemon --config <workdir>/daemon.json`), with its
socket in the workdir. Its own config carries only the daemon's keys and, when the first
call's config names one, the kubeconfig (so it watches the API double): every other
meta-plugin key comes from each call's config, as the shim sends it, so a scenario that
changes its config between calls sees the change. A later call with another kubeconfig
restarts the daemon on it.

Watch caches are eventually consistent; thin mode reads the API at the moment of the
call. So that scenarios which change a NAD or pod and ADD right away see the same thing
in both modes, each ADD first asks the daemon to list again (POST /sync): in daemon mode
the API double therefore also records a `list` of pods and one of NADs per ADD, plus the
daemon's long-running watch requests. Set `sync_before_add = False` to see the cache's
own behaviour.

`close()` stops the daemon with SIGTERM (the graceful path) and fails if it did not exit
cleanly; its log is in `<workdir>/daemon.log` and in `last_daemon_log`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, ClassVar

from meta import shim
from tests.kube.runners import ThinRunner

NODE_NAME = "node-1"  # the API double's default node for pods
START_TIMEOUT = 30.0
READY_GRACE = 5.0  # seconds to wait for the watch caches at start (the API may be down)
STOP_TIMEOUT = 30.0
SYNC_TIMEOUT = 15.0


class DaemonRunner(ThinRunner):
    """Daemon mode: `netplex daemon` in the node namespace, the shim for every call."""

    name: ClassVar[str] = "daemon"
    sync_before_add: ClassVar[bool] = True

    def __init__(
        self, *, node_ns: str, workdir: Path, concurrency: int = 8, daemon_keys: dict[str, Any] | None = None
    ) -> None:
        self.node_ns = os.path.basename(node_ns)
        self.workdir = Path(workdir)
        self.socket_path = str(self.workdir / "netplex.sock")
        self.concurrency = concurrency
        self.daemon_keys = dict(daemon_keys or {})
        self.autostart = True  # False: calls go to the shim whether or not a daemon runs
        self.last_stdout = ""
        self.last_stderr = ""
        self.last_daemon_log = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._kubeconfig: str | None = None

    # -- the Runner interface ----------------------------------------------------------

    def stdin_for(self, command: str, conf: dict[str, Any] | bytes) -> bytes:
        """The call's config with the daemon's socket, so `netplex` acts as the shim. Bytes
        go as they are (they name no daemonSocket, so `netplex` handles them as thin mode
        would: that is the shim's contract). The daemon starts on the first call."""
        if isinstance(conf, bytes):
            return conf
        if self.autostart:
            kubeconfig = conf.get("kubeconfig", "")
            self.start(kubeconfig if isinstance(kubeconfig, str) else "")
            if command == "ADD" and self.sync_before_add:
                self.sync()
        return json.dumps({**conf, "daemonSocket": self.socket_path}).encode()

    def close(self) -> None:
        """Stop the daemon gracefully; fail if it did not exit with 0."""
        code = self.stop()
        if code not in (None, 0):
            raise AssertionError(f"netplex daemon exited {code}; its log:\n{self.last_daemon_log[-4000:]}")

    # -- the daemon ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, kubeconfig: str = "") -> None:
        """Start the daemon (watching `kubeconfig`'s API) unless it already runs on it."""
        if self.running and kubeconfig == self._kubeconfig:
            return
        self.close()
        config: dict[str, Any] = {
            "socketPath": self.socket_path,
            "nodeName": NODE_NAME,
            "concurrency": self.concurrency,
            "logLevel": "debug",
            **self.daemon_keys,
        }
        if kubeconfig:
            config["kubeconfig"] = kubeconfig
        config_path = self.workdir / "daemon.json"
        config_path.write_text(json.dumps(config))
        self._log = open(self.workdir / "daemon.log", "ab")  # noqa: SIM115 - lives as long as the daemon
        environ = {key: value for key, value in os.environ.items() if not key.startswith(("CNI_", "KUBERNETES_"))}
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", self.node_ns, sys.executable, "-m", "meta.daemon", "--config", str(config_path)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=environ,
        )
        self._kubeconfig = kubeconfig
        self.wait_serving(START_TIMEOUT)
        self.wait_ready(READY_GRACE)  # the caches; a scenario may have stopped the API

    def wait_serving(self, timeout: float) -> None:
        """Wait until the daemon answers on its socket (GET /healthz)."""
        client = shim.Client(self.socket_path, timeout=5.0)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.call("GET", shim.PATH_HEALTHZ)[0] == 200:
                    return
            except (shim.Unreachable, shim.NoAnswer):
                pass
            if self._proc is None or self._proc.poll() is not None:
                raise AssertionError(f"netplex daemon exited at start; its log:\n{self._read_log()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"netplex daemon not serving after {timeout}s; log:\n{self._read_log()[-4000:]}")
            time.sleep(0.02)

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for GET /readyz; whether it came."""
        return shim.Client(self.socket_path, timeout=5.0).wait_ready(timeout)

    def sync(self) -> bool:
        """Ask the daemon's watch caches to list again now (a barrier); False when they
        could not (the API double is stopped, say): the request then meets what thin mode
        meets, an unreachable API, on any read the cache cannot answer."""
        try:
            status, _ = shim.Client(self.socket_path, timeout=SYNC_TIMEOUT).call("POST", shim.PATH_SYNC)
        except (shim.Unreachable, shim.NoAnswer):
            return False
        return status == 200

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the daemon and wait for it; its exit code (None if none was running)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)  # `ip netns exec` execs the daemon: the signal reaches it
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.last_daemon_log = self._read_log()
        return proc.returncode

    def _read_log(self) -> str:
        path = self.workdir / "daemon.log"
        return path.read_text(errors="replace") if path.exists() else ""
