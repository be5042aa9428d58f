"""Collecting what interrupted work leaves on disk: temp files of atomic writes
(`.tmp-*` in the cache dir and in IPAM network dirs), sandbox lock files nobody holds,
and the IPAM dirs of networks that no cache entry names any more.

A temp file lives for the instant between its write and its rename, so one older than
`STALE_AGE` belongs to a process that died (kill -9, OOM); younger ones are left alone,
since another plugin process may be about to rename it. A lock file is removed only while
this process holds its flock (the protocol of meta/daemon_lock.py). An IPAM network dir
under one of `ipamRoots` whose network no cache entry names is removed only when it holds
no reservation (only its lock, last-reserved hints and stale temp files): a reservation
may belong to a plugin netplex does not drive. Standard library only; never raises for
one bad file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterable

import msgspec

from cni import store

log = logging.getLogger(__name__)

STALE_AGE = 600.0  # seconds: far beyond any write-to-rename window
LOCK_DIR = "locks"
CACHE_DIR = "cache"
_IPAM_HOUSEKEEPING = ("lock", "last_reserved_ip.")


class Swept(msgspec.Struct):
    temp_files: int = 0
    locks: int = 0
    ipam_dirs: int = 0


def sweep_temp_files(directory: str, *, older_than: float = STALE_AGE, now: float | None = None) -> int:
    """Remove `.tmp-*` files in `directory` whose mtime is more than `older_than` ago."""
    now = time.time() if now is None else now
    removed = 0
    for name in _listdir(directory):
        if not name.startswith(store.TMP_PREFIX):
            continue
        path = os.path.join(directory, name)
        try:
            if now - os.lstat(path).st_mtime > older_than and store.remove(path):
                removed += 1
        except OSError:
            continue
    return removed


def sweep_locks(cni_dir: str) -> int:
    """Remove the sandbox lock files no process holds (a holder killed mid-request)."""
    directory = os.path.join(cni_dir, LOCK_DIR)
    removed = 0
    for name in _listdir(directory):
        if name.endswith(".lock") and _remove_unheld(os.path.join(directory, name)):
            removed += 1
    return removed


def sweep_ipam_dirs(
    roots: Iterable[str], live_networks: set[str], *, older_than: float = STALE_AGE, now: float | None = None
) -> tuple[int, int]:
    """Under each root: stale temp files of every network dir; then the dirs of networks
    not in `live_networks` that hold no reservation. Returns (temp files, dirs) removed."""
    temps = dirs = 0
    for root in roots:
        for network in _listdir(root):
            directory = os.path.join(root, network)
            if not os.path.isdir(directory) or os.path.islink(directory):
                continue
            temps += sweep_temp_files(directory, older_than=older_than, now=now)
            if network not in live_networks and _remove_if_unreserved(directory, older_than=older_than, now=now):
                dirs += 1
    return temps, dirs


def sweep_cni_dir(
    cni_dir: str,
    *,
    ipam_roots: Iterable[str] = (),
    live_networks: set[str] | None = None,
    older_than: float = STALE_AGE,
) -> Swept:
    """Everything this module collects for one cniDir (the daemon's start, netplex GC).
    IPAM dirs are swept only when `live_networks` is given (GC knows them)."""
    swept = Swept()
    swept.temp_files = sweep_temp_files(os.path.join(cni_dir, CACHE_DIR), older_than=older_than)
    swept.locks = sweep_locks(cni_dir)
    if live_networks is not None:
        temps, dirs = sweep_ipam_dirs(ipam_roots, live_networks, older_than=older_than)
        swept.temp_files += temps
        swept.ipam_dirs = dirs
    if swept.temp_files or swept.locks or swept.ipam_dirs:
        log.info(
            "swept %s: %d stale temp files, %d unheld locks, %d unused IPAM dirs",
            cni_dir, swept.temp_files, swept.locks, swept.ipam_dirs,
        )
    return swept


def _listdir(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:  # missing, not a directory, unreadable: nothing to sweep there
        return []


def _remove_unheld(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False  # held: a live request
            return False
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            return False
        return same and store.remove(path)  # while holding it, as a releasing holder does
    finally:
        os.close(fd)


def _remove_if_unreserved(directory: str, *, older_than: float, now: float | None) -> bool:
    """Remove an IPAM network dir that holds nothing but housekeeping files, under its lock."""
    lock = os.path.join(directory, "lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        fd = -1
    except OSError:
        return False
    try:
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # an IPAM call is at work there
        names = _listdir(directory)
        if any(not name.startswith((*_IPAM_HOUSEKEEPING, store.TMP_PREFIX)) for name in names):
            return False  # a reservation (or something not ours): keep the dir
        if any(name.startswith(store.TMP_PREFIX) for name in names):
            return False  # a temp file too young to remove
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
        try:
            os.rmdir(directory)
        except OSError:
            return False
        return True
    finally:
        if fd >= 0:
            os.close(fd)
