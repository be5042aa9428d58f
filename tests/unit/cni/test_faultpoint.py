"""cni.faultpoint: silent without its variable, records steps with it, and kills the
process at the n-th arrival (checked in a child process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cni import faultpoint


def test_without_the_variable_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faultpoint.FILE_ENV, raising=False)
    faultpoint.reached("x")
    assert list(tmp_path.iterdir()) == []


def test_the_process_dies_by_sigkill_at_the_nth_arrival(tmp_path: Path) -> None:
    record = tmp_path / "points"
    code = "from cni import faultpoint\nfor _ in range(3):\n    faultpoint.reached('step')\nprint('survived')\n"
    env = {**os.environ, faultpoint.FILE_ENV: str(record), faultpoint.KILL_ENV: "step:2"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert b"survived" not in proc.stdout
    assert [line.split()[1] for line in record.read_text().splitlines()] == ["step", "step"]
