"""Atomic files: write beside, fsync, rename; JSON documents kept one per key.

Every state file netplex keeps (the attachment cache, IPAM reservations) goes through
`atomic_write`, so a crash leaves the old or the new content, never a torn file."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

TMP_PREFIX = ".tmp-"
TMP_SUFFIX = ".part"


def atomic_write(path: str, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` in one step: a temp file beside it, fsync, rename, then
    fsync of the directory so the rename survives a crash. On any failure the temp file
    is removed and `path` keeps its old content."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX, suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: str, doc: Any) -> None:
    """`doc` as JSON at `path`, atomically."""
    atomic_write(path, json.dumps(doc, indent=1, sort_keys=True).encode())


def read_json(path: str) -> Any | None:
    """The document at `path`, or None when there is none (a torn file cannot exist)."""
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def remove(path: str) -> bool:
    """Delete `path`; False when it was already gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """An exclusive flock on `path` (created if missing), across processes."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
