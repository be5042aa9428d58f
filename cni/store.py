"""Atomic files: write beside, fsync, rename; JSON documents kept one per key.

Every state file netplex keeps (the attachment cache, IPAM reservations) goes through
`atomic_write`, so a crash leaves the old or the new content, never a torn file.

How much to fsync is the caller's choice (`Sync`), because it is most of the cost of a
write and what it buys depends on the file:

- The rename alone (`Sync.NONE`) survives any crash of the process: the data is in the
  kernel once `write` returns. Only a power loss or a kernel crash can lose it, and then
  the file may even be empty.
- `Sync.FILE` fsyncs the data before the rename: after a power loss the file has its old
  or its new content (never empty or torn), but the rename itself may be undone.
- `Sync.FULL` also fsyncs the directory, so the rename survives a power loss too. It is
  `atomic_write`'s default (installed configs and binaries, which must be there on boot).

Per-sandbox CNI state (the attachment cache) is written with `Sync.NONE`: write beside,
rename. That survives kill -9 of the plugin or the daemon at any point (the old or the
new file, never a torn one), because the data is in the kernel's page cache once `write`
returns. fsync would add only power-loss safety, at 10-18 ms per write under I/O load,
and a power loss is a reboot: every pod namespace dies with it, the runtime ADDs new
sandboxes (new container IDs) afterwards, and whatever the old entries said no longer
names anything in the kernel. What survives a reboot and matters is IPAM (host-local's
reservations), which the runtime's GC (CNI 1.1 `cni.dev/valid-attachments`) reconciles.
So after a power loss a cache file may be empty or hold a prefix of its JSON: every
reader treats such a file as "nothing recorded" (`read_json` returns None), never as an
error that would block the sandbox's DEL forever. Installed configs and binaries, which
must be there on boot, keep `Sync.FULL`."""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
from collections.abc import Iterator
from typing import Any

from cni import faultpoint

TMP_PREFIX = ".tmp-"
TMP_SUFFIX = ".part"


class Sync(enum.Enum):
    """What an atomic write fsyncs, and so what survives a power loss (module docstring)."""

    NONE = "none"  # nothing: a process crash is safe, a power loss may leave an empty file
    FILE = "file"  # the data: old or new content after a power loss, the rename may be undone
    FULL = "full"  # the data and the directory: the rename survives a power loss too


def atomic_write(path: str, data: bytes, *, mode: int = 0o600, sync: Sync = Sync.FULL) -> None:
    """Replace `path` with `data` in one step: a temp file beside it, fsync (unless
    `Sync.NONE`), rename, then with `Sync.FULL` an fsync of the directory so the rename
    survives a power loss. On any failure the temp file is removed and `path` keeps its
    old content."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = create_temp(directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync is not Sync.NONE:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        faultpoint.reached("store.before-rename")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync is Sync.FULL:
        _fsync_directory(directory)


def create_temp(directory: str, prefix: str = TMP_PREFIX, suffix: str = TMP_SUFFIX) -> tuple[int, str]:
    """(fd, path) of a new file in `directory`, opened for writing, mode 0600: what
    tempfile.mkstemp does, without importing tempfile (shutil, random: ~5 ms on every
    exec'd call)."""
    for _ in range(100):
        tmp = os.path.join(directory, f"{prefix}{os.urandom(6).hex()}{suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


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


def write_json(path: str, doc: Any, *, sync: Sync = Sync.NONE) -> None:
    """`doc` as JSON at `path`, atomically; per-sandbox CNI state, so `Sync.NONE` unless
    told (module docstring: kill -9 safe; a power loss may leave it empty)."""
    atomic_write(path, json.dumps(doc, separators=(",", ":"), sort_keys=True).encode(), sync=sync)


def read_json(path: str) -> Any | None:
    """The document at `path`, or None when nothing is recorded: no file, an empty one,
    or one cut short (what a power loss can leave of a file written without fsync).
    Raises `ValueError` only for a whole file that is not JSON, `OSError` if unreadable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    if is_torn(data):
        return None
    return json.loads(data)


def is_torn(data: bytes) -> bool:
    """True for what a lost write leaves: nothing, NULs or whitespace, or the beginning
    of a JSON document that ends before it closes."""
    text = data.strip(b"\0 \t\r\n")
    if not text:
        return True
    try:
        json.loads(text)
    except RecursionError:
        return False
    except json.JSONDecodeError as exc:  # cut short: the parser ran out of input
        return exc.pos >= len(text) or exc.msg.startswith("Unterminated string")
    except ValueError:  # not UTF-8
        return False
    return False


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
