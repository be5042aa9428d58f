"""logFile rotation with Multus's logOptions (cni/logrotate.py): size, backups, gzip, age."""

from __future__ import annotations

import gzip
import logging
import os
import time
from pathlib import Path

from cni import logrotate


def _fill(handler: logging.Handler, lines: int) -> None:
    logger = logging.getLogger(f"test-rotate-{id(handler)}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for index in range(lines):
            logger.warning("line %d %s", index, "x" * 200)
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_without_log_options_the_file_is_never_rotated(tmp_path: Path) -> None:
    handler = logrotate.file_handler(str(tmp_path / "n.log"), None)
    assert type(handler) is logging.FileHandler
    handler.close()


def test_max_size_and_max_backups_rotate_and_compress_gzips(tmp_path: Path) -> None:
    path = tmp_path / "netplex.log"
    handler = logrotate.file_handler(str(path), {"maxSize": 0.01, "maxBackups": 2, "compress": True})
    _fill(handler, 300)  # ~60 KiB through a 10 KiB limit
    rotated = sorted(name for name in os.listdir(tmp_path) if name != "netplex.log")
    assert rotated == ["netplex.log.1.gz", "netplex.log.2.gz"]
    assert b"line" in gzip.decompress((tmp_path / "netplex.log.1.gz").read_bytes())
    assert path.stat().st_size <= 10 * 1024 + 300


def test_max_age_prunes_old_rotated_files(tmp_path: Path) -> None:
    base = tmp_path / "netplex.log"
    old, new = tmp_path / "netplex.log.3", tmp_path / "netplex.log.1"
    old.write_text("old")
    new.write_text("new")
    week_ago = time.time() - 7 * 86400
    os.utime(old, (week_ago, week_ago))
    logrotate.prune(str(base), max_age=5 * 86400)
    assert not old.exists() and new.exists()
