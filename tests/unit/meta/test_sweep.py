"""meta.sweep: stale temp files go, young ones stay; unheld locks go, held ones stay; an
unused IPAM dir goes only when it holds no reservation."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from meta import sweep


def aged(path: Path, seconds: float) -> Path:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))
    return path


def test_only_temp_files_older_than_the_safe_age_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".tmp-old.part").write_text("")
    aged(tmp_path / ".tmp-old.part", sweep.STALE_AGE + 60)
    (tmp_path / ".tmp-young.part").write_text("")
    (tmp_path / "c1-eth0.json").write_text("{}")
    aged(tmp_path / "c1-eth0.json", sweep.STALE_AGE + 60)
    assert sweep.sweep_temp_files(str(tmp_path)) == 1
    assert sorted(os.listdir(tmp_path)) == [".tmp-young.part", "c1-eth0.json"]


def test_a_held_lock_stays_and_an_unheld_one_goes(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir()
    (locks / "dead.lock").write_text("")
    held = locks / "live.lock"
    held.write_text("")
    fd = os.open(held, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert sweep.sweep_locks(str(tmp_path)) == 1
    finally:
        os.close(fd)
    assert os.listdir(locks) == ["live.lock"]


def test_unused_ipam_dirs_go_only_without_reservations(tmp_path: Path) -> None:
    for name in ("unused", "reserved", "live"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "lock").write_text("")
        (tmp_path / name / "last_reserved_ip.0").write_text("10.0.0.2")
    (tmp_path / "reserved" / "10.0.0.2").write_text("c1\r\neth0")
    assert sweep.sweep_ipam_dirs([str(tmp_path)], {"live"}) == (0, 1)
    assert sorted(os.listdir(tmp_path)) == ["live", "reserved"]


def test_a_missing_or_file_cni_dir_sweeps_nothing(tmp_path: Path) -> None:
    assert sweep.sweep_cni_dir(str(tmp_path / "nope")) == sweep.Swept()
    assert sweep.sweep_cni_dir("/dev/null", ipam_roots=["/dev/null"], live_networks=set()) == sweep.Swept()
