"""Shared helpers for the cni tests: a valid CNI environment, running the skeleton
in-process with byte streams, and writing throwaway plugin executables."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cni import skel

REPO_ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
VECTORS = Path(__file__).with_name("vectors")


@pytest.fixture(autouse=True)
def _no_root_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """run() configures root logging once per process; in tests that would leave handlers
    on pytest's captured streams, so mark it done."""
    monkeypatch.setattr(skel, "_configured", True)
    yield


def cni_env(command: str, **overrides: str) -> dict[str, str]:
    """A complete, valid CNI environment for `command`; keyword arguments override
    (CNI_NETNS="..."), and a value of "-" removes the variable."""
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "3f6940ab5ab4",
        "CNI_NETNS": "/var/run/netns/blue",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web",
        "CNI_PATH": "/opt/cni/bin",
    }
    for key, value in overrides.items():
        if value == "-":
            env.pop(key, None)
        else:
            env[key] = value
    return env


def config(cni_version: str = "1.1.0", **extra: Any) -> bytes:
    return json.dumps({"cniVersion": cni_version, "name": "dbnet", "type": "fake", **extra}).encode()


def run_skel(
    plugin: skel.Plugin | Callable[[], skel.Plugin], environ: Mapping[str, str], stdin: bytes
) -> tuple[int, str]:
    """skel.run in-process; returns (exit code, stdout text)."""
    out = io.StringIO()
    code = skel.run(plugin, environ=environ, stdin=io.BytesIO(stdin), stdout=out)
    return code, out.getvalue()


def write_script(path: Path, body: str) -> Path:
    """An executable Python script run by this venv's interpreter."""
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def subprocess_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment a runtime would give a plugin: PATH and the repository on the import
    path, no inherited CNI_* variables, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CNI_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


def load_vector(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return doc
