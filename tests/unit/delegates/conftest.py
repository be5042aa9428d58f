"""Helpers for the IPAM delegate tests: run a plugin in-process through the skeleton, or
as its real console script, with the same environment and stdin, and read the answer."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from cni import skel

VENV_BIN = os.path.dirname(sys.executable)  # the console scripts sit beside the interpreter running pytest
VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a plugin invocation printed and returned."""

    rc: int
    doc: Any

    @property
    def code(self) -> int | None:
        return self.doc.get("code") if isinstance(self.doc, dict) and self.rc != 0 else None

    @property
    def msg(self) -> str:
        return str(self.doc.get("msg", "")) if isinstance(self.doc, dict) else ""


def environ(command: str, *, container_id: str = "c1", ifname: str = "eth0", cni_args: str = "") -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": "/var/run/netns/test",
        "CNI_IFNAME": ifname,
        "CNI_ARGS": cni_args,
        "CNI_PATH": "/opt/cni/bin",
    }


def run_in_process(plugin: skel.Plugin, env: Mapping[str, str], conf: Mapping[str, Any]) -> Answer:
    out = io.StringIO()
    rc = skel.run(plugin, environ=env, stdin=io.BytesIO(json.dumps(conf).encode()), stdout=out)
    text = out.getvalue()
    return Answer(rc, json.loads(text) if text.strip() else None)


def run_executable(name: str, env: Mapping[str, str], conf: Mapping[str, Any]) -> Answer:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")} | dict(env)
    proc = subprocess.run(
        [os.path.join(VENV_BIN, name)],
        input=json.dumps(conf).encode(),
        capture_output=True,
        env=full_env,
        timeout=60,
        check=False,
    )
    text = proc.stdout.decode()
    return Answer(proc.returncode, json.loads(text) if text.strip() else None)


Runner = Callable[..., Answer]


@pytest.fixture
def host_local() -> Runner:
    """`host_local(command, conf, **environ_kwargs)`, in-process."""
    from delegates.ipam import host_local as module

    def run(command: str, conf: Mapping[str, Any], **kwargs: Any) -> Answer:
        return run_in_process(module.PLUGIN, environ(command, **kwargs), conf)

    return run


@pytest.fixture
def static() -> Runner:
    """`static(command, conf, **environ_kwargs)`, in-process."""
    from delegates.ipam import static as module

    def run(command: str, conf: Mapping[str, Any], **kwargs: Any) -> Answer:
        return run_in_process(module.PLUGIN, environ(command, **kwargs), conf)

    return run


def net(ipam: Mapping[str, Any], *, version: str = "1.0.0", name: str = "testnet", **extra: Any) -> dict[str, Any]:
    """A bridge-like network config carrying `ipam`, as a link plugin would receive it."""
    return {"cniVersion": version, "name": name, "type": "bridge", "ipam": dict(ipam), **extra}
