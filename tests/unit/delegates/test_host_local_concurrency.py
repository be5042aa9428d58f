"""host-local under concurrent ADDs from separate processes (the real `netplex-host-local`
executable, 50 at once): never the same address twice, clean exhaustion errors, and no
reservation left behind by an ADD that failed. Needs no root: only a temporary data dir."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from tests.unit.delegates.conftest import VENV_BIN, environ

PROCESSES = 50


def add_concurrently(conf: dict[str, Any], count: int = PROCESSES) -> list[tuple[int, Any]]:
    """Start `count` ADDs at once (container c0..cN), then collect every answer."""
    stdin = json.dumps(conf).encode()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    procs = [
        subprocess.Popen(
            [os.path.join(VENV_BIN, "netplex-host-local")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=base | environ("ADD", container_id=f"c{i}"),
        )
        for i in range(count)
    ]
    answers = []
    for proc in procs:
        out, _ = proc.communicate(stdin, timeout=120)
        answers.append((proc.returncode, json.loads(out)))
    return answers


def reservations(data_dir: Path) -> dict[str, bytes]:
    directory = data_dir / "race"
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name[0].isdigit()}


def conf_for(data_dir: Path, *range_sets: str) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "race",
        "type": "bridge",
        "ipam": {"type": "host-local", "dataDir": str(data_dir), "ranges": [[{"subnet": s}] for s in range_sets]},
    }


def test_fifty_concurrent_adds_never_share_an_address(tmp_path: Path) -> None:
    answers = add_concurrently(conf_for(tmp_path, "10.60.0.0/26"))  # 61 free: .2-.62
    assert [rc for rc, _ in answers] == [0] * PROCESSES, [doc for rc, doc in answers if rc]
    given = [doc["ips"][0]["address"] for _, doc in answers]
    assert len(set(given)) == PROCESSES, Counter(given).most_common(3)
    stored = reservations(tmp_path)
    assert len(stored) == PROCESSES
    owners = {name: content.split(b"\r\n")[0].decode() for name, content in stored.items()}
    assert sorted(owners.values()) == sorted(f"c{i}" for i in range(PROCESSES))
    for (_, doc), i in zip(answers, range(PROCESSES), strict=True):  # each file names its holder
        assert owners[doc["ips"][0]["address"].split("/")[0]] == f"c{i}"


def test_exhaustion_under_contention_fails_cleanly(tmp_path: Path) -> None:
    answers = add_concurrently(conf_for(tmp_path, "10.61.0.0/28"))  # 13 free: .2-.14
    ok = [doc for rc, doc in answers if rc == 0]
    failed = [doc for rc, doc in answers if rc != 0]
    assert len(ok) == 13
    assert {doc["ips"][0]["address"] for doc in ok} == {f"10.61.0.{n}/28" for n in range(2, 15)}
    assert len(failed) == PROCESSES - 13
    assert {(doc["code"], doc["msg"]) for doc in failed} == {
        (11, "no IP addresses available in range set 0: 10.61.0.1-10.61.0.14")
    }
    assert len(reservations(tmp_path)) == 13


def test_failed_adds_leave_no_reservation_behind(tmp_path: Path) -> None:
    # The first range set has room for everyone, the second for 13: every ADD that fails
    # in the second must give back what it took in the first.
    answers = add_concurrently(conf_for(tmp_path, "10.62.0.0/26", "10.63.0.0/28"))
    ok = [doc for rc, doc in answers if rc == 0]
    assert len(ok) == 13
    assert all(doc["code"] == 11 and "range set 1" in doc["msg"] for rc, doc in answers if rc)
    stored = reservations(tmp_path)
    assert len(stored) == 26
    held = {doc["ips"][i]["address"].split("/")[0] for doc in ok for i in (0, 1)}
    assert set(stored) == held
    assert not [p for p in (tmp_path / "race").iterdir() if p.name.startswith(".tmp")]
