"""Log rotation for `logFile` with Multus's `logOptions` (lumberjack's meaning), from the
standard library's rotating handler:

  maxSize     megabytes before the file is rotated (lumberjack's default: 100)
  maxBackups  rotated files kept (0: all, as lumberjack; then only maxAge limits them)
  maxAge      days a rotated file is kept (0: no age limit)
  compress    rotated files are gzipped (`<file>.1.gz`)

Without `logOptions` the file is never rotated (netplex's behaviour before). Many plugin
processes write one file: a process that rotates renames the file under the others,
which finish their few lines in the renamed one (lumberjack, under Multus, does the
same). No netlink, no Kubernetes: standard library only."""

from __future__ import annotations

import glob
import gzip
import logging
import logging.handlers
import os
import shutil
import time
from collections.abc import Mapping
from typing import Any

DEFAULT_MAX_SIZE_MB = 100
UNLIMITED_BACKUPS = 1_000_000
_DAY = 86400.0


def file_handler(path: str, options: Any) -> logging.Handler:
    """A handler for `path`: rotating per `options` (a logOptions mapping), else plain."""
    if not isinstance(options, Mapping):
        return logging.FileHandler(path)
    max_size = _number(options.get("maxSize")) or DEFAULT_MAX_SIZE_MB
    backups = int(_number(options.get("maxBackups"))) or UNLIMITED_BACKUPS
    handler = _Rotating(path, maxBytes=int(max_size * 1024 * 1024), backupCount=backups,
                        max_age_days=_number(options.get("maxAge")))
    if options.get("compress") is True:
        handler.namer = lambda name: name + ".gz"
        handler.rotator = _gzip
    return handler


class _Rotating(logging.handlers.RotatingFileHandler):
    def __init__(self, path: str, *, maxBytes: int, backupCount: int, max_age_days: float) -> None:  # noqa: N803
        super().__init__(path, maxBytes=maxBytes, backupCount=backupCount)
        self._max_age = max_age_days * _DAY

    def doRollover(self) -> None:  # noqa: N802 - the standard library's name
        super().doRollover()
        if self._max_age > 0:
            prune(self.baseFilename, max_age=self._max_age)


def prune(base: str, *, max_age: float, now: float | None = None) -> None:
    """Remove rotated files of `base` older than `max_age` seconds."""
    limit = (time.time() if now is None else now) - max_age
    for name in glob.glob(glob.escape(base) + ".*"):
        try:
            if os.path.getmtime(name) < limit:
                os.unlink(name)
        except OSError:
            continue


def _gzip(source: str, dest: str) -> None:
    with open(source, "rb") as raw, gzip.open(dest, "wb") as packed:
        shutil.copyfileobj(raw, packed)
    os.unlink(source)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0.0
