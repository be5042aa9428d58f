"""Deadlines through the real `netplex` executable, in thin and daemon mode: an exec'd
delegate that hangs, and an exec'd IPAM that hangs under the built-in bridge, each give
error 11 within addTimeout (plus a generous margin: only a bound is asserted), the hung
process group is killed, and nothing is left: links, host veths, IPAM, cache."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.kube.runners import (
    ThinRunner,
    runner_fixture,  # noqa: F401 - the shared `runner` fixture
)
from tests.netns.conftest import ip_json

pytestmark = pytest.mark.netns

GENEROUS_MARGIN = 15.0  # seconds; the hung plugins sleep 120 s
SLEEPER = """#!/bin/sh
# A CNI plugin (or IPAM) that hangs on ADD, and records its pid for the test.
if [ "$CNI_COMMAND" = "ADD" ]; then
    echo $$ >> {pids}
    exec sleep 120
fi
if [ "$CNI_COMMAND" = "VERSION" ]; then
    echo '{{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}}'
fi
exit 0
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        return handle.read().split()[2] != "Z"


def _gone(pids_file: Path, timeout: float = 10.0) -> bool:
    pids = [int(line) for line in pids_file.read_text().split()] if pids_file.exists() else []
    limit = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < limit:
        time.sleep(0.05)
    return bool(pids) and not any(_alive(pid) for pid in pids)


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pids = tmp_path / "pids"
    script = bin_dir / "sleeper"
    script.write_text(SLEEPER.format(pids=pids))
    script.chmod(0o755)
    local = tmp_path / "networks"
    local.mkdir()
    base = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "addTimeout": 8.0, "delegateTimeout": 30.0,
            "cniDir": str(tmp_path / "cni"), "binDir": str(bin_dir), "localNetworks": str(local)}
    return {"base": base, "pids": pids, "data": tmp_path / "ipam", "cni": tmp_path / "cni"}


def _timed_add(runner: ThinRunner, conf: dict[str, Any], netns: str) -> tuple[Any, float]:
    started = time.monotonic()
    answer = runner.add(conf, container_id=f"c{uuid.uuid4().hex}", netns=netns)
    return answer, time.monotonic() - started


def _clean(setup: dict[str, Any], container_ns: str, host_ns: str) -> None:
    assert [link["ifname"] for link in ip_json("link", "show", ns=container_ns)] == ["lo"]
    assert [link["ifname"] for link in ip_json("-d", "link", "show", ns=host_ns)
            if link.get("linkinfo", {}).get("info_kind") == "veth"] == []
    cache = setup["cni"] / "cache"
    assert not cache.exists() or os.listdir(cache) == []
    data: Path = setup["data"]
    assert not data.exists() or [p for p in data.rglob("*") if p.is_file()
                                 and not p.name.startswith(("last_reserved_ip", "lock"))] == []


def test_a_hung_execd_delegate_gives_error_11_within_the_deadline(
    runner: ThinRunner, setup: dict[str, Any], container_ns: str, host_ns: str
) -> None:
    conf = {**setup["base"], "delegates": [
        {"name": "cluster", "type": "bridge", "bridge": f"dl{uuid.uuid4().hex[:8]}",
         "ipam": {"type": "host-local", "subnet": "10.95.0.0/24", "dataDir": str(setup["data"])}},
        {"name": "slow", "type": "sleeper"}]}
    (rc, doc), elapsed = _timed_add(runner, conf, container_ns)
    assert rc == 1 and doc["code"] == 11, (doc, runner.last_stderr)
    assert "sleeper" in doc["msg"]
    assert elapsed < conf["addTimeout"] + GENEROUS_MARGIN
    assert _gone(setup["pids"]), "the hung plugin still runs"
    _clean(setup, container_ns, host_ns)


def test_a_hung_execd_ipam_under_the_builtin_bridge_gives_error_11_within_the_deadline(
    runner: ThinRunner, setup: dict[str, Any], container_ns: str, host_ns: str
) -> None:
    conf = {**setup["base"], "delegates": [
        {"name": "cluster", "type": "bridge", "bridge": f"dl{uuid.uuid4().hex[:8]}",
         "ipam": {"type": "sleeper"}}]}
    (rc, doc), elapsed = _timed_add(runner, conf, container_ns)
    assert rc == 1 and doc["code"] == 11, (doc, runner.last_stderr)
    assert elapsed < conf["addTimeout"] + GENEROUS_MARGIN
    assert _gone(setup["pids"]), "the hung IPAM still runs"
    _clean(setup, container_ns, host_ns)
