"""cpio "newc" archives, the format the kernel unpacks as an initramfs.

Written by hand so that building the VM's initramfs needs neither root (device nodes are
just header fields) nor a `cpio` binary. Pure: no filesystem access here; the caller hands
in bytes and gets bytes back.
"""

from __future__ import annotations

import dataclasses
import stat
from collections.abc import Iterable

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One archive member: `path` is relative ("init", "bin/busybox"), `mode` includes the type."""

    path: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)  # (major, minor) of a device node


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | perm)


def regular(path: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | perm, data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def char_device(path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | perm, rdev=(major, minor))


def archive(entries: Iterable[Entry]) -> bytes:
    """The newc archive of `entries` in order, ending with the trailer.

    Owners are root, times are zero (the archive is reproducible), and every member gets
    its own inode number so the kernel never mistakes two files for hard links.
    """
    out = bytearray()
    for ino, entry in enumerate(entries, start=1):
        if entry.path.startswith("/") or not entry.path:
            raise ValueError(f"cpio member path must be relative: {entry.path!r}")
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        _append(out, entry.path, ino=ino, mode=entry.mode, nlink=nlink, data=entry.data, rdev=entry.rdev)
    _append(out, TRAILER, ino=0, mode=0, nlink=1, data=b"", rdev=(0, 0))
    return bytes(out)


def _append(out: bytearray, name: str, *, ino: int, mode: int, nlink: int, data: bytes, rdev: tuple[int, int]) -> None:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    out += MAGIC + b"".join(b"%08x" % value for value in fields) + encoded
    _pad(out)
    out += data
    _pad(out)


def _pad(out: bytearray) -> None:
    out += b"\0" * (-len(out) % 4)  # header+name and data each end on a 4-byte boundary
