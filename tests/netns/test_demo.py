"""`netplex demo` as a person runs it: the real executable, as root, end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

NETPLEX = str(Path(sys.executable).with_name("netplex"))


def _demo_namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith("npdemo-")]


def test_demo_attaches_pings_and_leaves_nothing() -> None:
    before = _demo_namespaces()
    proc = subprocess.run([NETPLEX, "demo"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    assert "nothing left" in proc.stdout, proc.stdout
    assert "FAILED" not in proc.stdout and "LEFT BEHIND" not in proc.stdout, proc.stdout
    assert proc.stdout.count(": ok") == 3, proc.stdout  # pod-a reached pod-b over each network
    assert "Traceback" not in proc.stderr, proc.stderr
    match = re.search(r"node namespace npdemo-node-(\w+)", proc.stdout)
    assert match is not None, proc.stdout
    after = _demo_namespaces()
    assert [name for name in after if name.endswith(match.group(1))] == []  # its node and pods are gone
    assert set(after) <= set(before)  # (another demo running on this machine is not ours to judge)
