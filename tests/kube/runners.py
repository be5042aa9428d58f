"""How the meta-plugin tests call netplex: as a runtime does, one subprocess per CNI call.

A runner executes the real `netplex` executable with the CNI_* environment and the config
on stdin, inside a throwaway "node" namespace (`ip netns exec <node_ns> netplex`), so
bridges and host veths land there and never in the real host namespace. Every call
returns an `Answer`: the exit code and the parsed JSON on stdout (None when stdout was
empty), and keeps the raw stdout/stderr for assertion messages.

`RUNNERS` lists the runner classes the `runner` fixture (defined here; test modules and
conftests import it) parametrises over, so every scenario runs in every mode.
`ThinRunner` is thin mode: the plugin does all the work itself. `DaemonRunner`
(tests/kube/runners_daemon.py) subclasses it and only changes what `netplex` reads on
stdin, so the call goes through the shim to `netplex daemon`. A runner class is built as
`cls(node_ns=<namespace name>, workdir=<empty scratch dir>)` and closed with `close()`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import pytest

NETPLEX = str(Path(sys.executable).with_name("netplex"))
CALL_TIMEOUT = 120.0


class Answer(NamedTuple):
    """One CNI call's outcome: unpacks as `(rc, doc)`."""

    rc: int
    doc: Any

    @property
    def code(self) -> int | None:
        """The error code of a failed call (None on success or without an error document)."""
        return self.doc.get("code") if self.rc != 0 and isinstance(self.doc, dict) else None

    @property
    def msg(self) -> str:
        return str(self.doc.get("msg", "")) if isinstance(self.doc, dict) else ""


class ThinRunner:
    """Thin mode: `netplex` as a plain CNI plugin, executed in the node namespace."""

    name: ClassVar[str] = "thin"

    def __init__(self, *, node_ns: str, workdir: Path) -> None:
        self.node_ns = os.path.basename(node_ns)
        self.workdir = workdir
        self.last_stdout = ""
        self.last_stderr = ""

    def call(
        self,
        command: str,
        conf: dict[str, Any] | bytes,
        *,
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        cni_args: str = "",
        env: dict[str, str] | None = None,
    ) -> Answer:
        """One CNI call. `conf` bytes go to stdin as they are (for garbage-input tests);
        `env` entries override the CNI_* variables built from the keywords, and an entry
        whose value is "" removes the variable."""
        stdin = self.stdin_for(command, conf)
        variables = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": cni_args,
            "CNI_PATH": str(Path(NETPLEX).parent),
        }
        variables.update(env or {})
        variables = {key: value for key, value in variables.items() if value}
        proc = subprocess.run(
            ["ip", "netns", "exec", self.node_ns, NETPLEX],
            input=stdin, env=variables, capture_output=True, timeout=CALL_TIMEOUT, check=False,
        )
        self.last_stdout = proc.stdout.decode(errors="replace")
        self.last_stderr = proc.stderr.decode(errors="replace")
        return Answer(proc.returncode, _parse(self.last_stdout))

    def stdin_for(self, command: str, conf: dict[str, Any] | bytes) -> bytes:
        """What `netplex` reads on stdin for this call (daemon mode adds its socket)."""
        return conf if isinstance(conf, bytes) else json.dumps(conf).encode()

    def add(self, conf: dict[str, Any], *, container_id: str, netns: str, ifname: str = "eth0",
            cni_args: str = "") -> Answer:
        return self.call("ADD", conf, container_id=container_id, netns=netns, ifname=ifname, cni_args=cni_args)

    def delete(self, conf: dict[str, Any], *, container_id: str, netns: str, ifname: str = "eth0",
               cni_args: str = "") -> Answer:
        return self.call("DEL", conf, container_id=container_id, netns=netns, ifname=ifname, cni_args=cni_args)

    def check(self, conf: dict[str, Any], *, container_id: str, netns: str, ifname: str = "eth0",
              cni_args: str = "") -> Answer:
        return self.call("CHECK", conf, container_id=container_id, netns=netns, ifname=ifname, cni_args=cni_args)

    def gc(self, conf: dict[str, Any]) -> Answer:
        return self.call("GC", conf)

    def status(self, conf: dict[str, Any]) -> Answer:
        return self.call("STATUS", conf)

    def close(self) -> None:
        """Nothing to stop: every call was its own process."""


def _parse(stdout: str) -> Any:
    """stdout as JSON; a non-JSON stdout is returned as the raw string so that the
    assertion that expects a document fails with what was printed."""
    if not stdout.strip():
        return None
    try:
        return json.loads(stdout)
    except ValueError:
        return stdout


Runner = ThinRunner  # every mode is a ThinRunner that changes what `netplex` reads

# Imported here, after ThinRunner exists: the daemon runner subclasses it.
from tests.kube.runners_daemon import DaemonRunner  # noqa: E402

RUNNERS: list[type[Runner]] = [ThinRunner, DaemonRunner]



@pytest.fixture(name="runner", params=RUNNERS, ids=lambda cls: cls.name)
def runner_fixture(request: pytest.FixtureRequest, host_ns: str, tmp_path: Path) -> Iterator[ThinRunner]:
    """netplex as a runtime calls it, in every mode, inside the throwaway node `host_ns`
    (import it into a conftest or test module to use it)."""
    workdir = tmp_path / f"runner-{request.param.name}"
    workdir.mkdir()
    made = request.param(node_ns=host_ns, workdir=workdir)
    try:
        yield made
    finally:
        made.close()
