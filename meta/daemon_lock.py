"""The sandbox lock: one holder at a time per container ID, across processes.

The daemon serialises the requests of one sandbox in memory (meta/daemon.py); this file
lock extends that to a shim that runs a DEL itself while the daemon is unreachable, or a
daemon that is still finishing a request while it shuts down. The lock is an flock on
`<cniDir>/locks/<containerID>.lock`, removed by its holder on release: a waiter that
then wakes up holding a removed file notices (the path names another file, or none) and
opens it again. Waiting is bounded by a deadline; past it, error 11.

Standard library only (the shim's DEL fallback uses it before loading anything else)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator

from cni.errors import CniError, Code

LOCK_DIR = "locks"
POLL_FIRST = 0.002  # seconds between tries, doubling up to POLL_MAX
POLL_MAX = 0.05
_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]{0,255}")  # the CNI container ID rule


def lock_path(cni_dir: str, container_id: str) -> str:
    """Named from a validated container ID only: no traversal through it."""
    if not _ID.fullmatch(container_id):
        raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_CONTAINERID {container_id[:80]!r} is not a valid container ID")
    return os.path.join(cni_dir, LOCK_DIR, f"{container_id}.lock")


@contextlib.contextmanager
def sandbox_lock(
    cni_dir: str,
    container_id: str,
    *,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold the sandbox's lock for the block; error 11 if it is not free by `deadline`."""
    path = lock_path(cni_dir, container_id)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    except OSError as exc:
        raise CniError(
            Code.IO_FAILURE, f"cannot make the lock directory in cniDir {cni_dir!r}: {exc.strerror}"
        ) from exc
    fd = _acquire(path, deadline=deadline, clock=clock, sleep=sleep, container_id=container_id)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still holding it: a waiter sees the file is gone and reopens
        os.close(fd)


def _acquire(
    path: str, *, deadline: float, clock: Callable[[], float], sleep: Callable[[float], None], container_id: str
) -> int:
    pause = POLL_FIRST
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise CniError(Code.IO_FAILURE, f"cannot open the sandbox lock {path!r}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise CniError(Code.IO_FAILURE, f"cannot lock {path!r}: {exc.strerror}") from exc
            remaining = deadline - clock()
            if remaining <= 0:
                raise CniError(
                    Code.TRY_AGAIN_LATER, f"container {container_id!r} is busy with another request (lock {path!r})"
                ) from None
            sleep(min(pause, remaining))
            pause = min(pause * 2, POLL_MAX)
            continue
        if _still_linked(fd, path):
            return fd
        os.close(fd)  # we locked a file its last holder had removed: take the new one


def _still_linked(fd: int, path: str) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)
