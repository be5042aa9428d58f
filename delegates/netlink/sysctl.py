"""Per-namespace network sysctls: read and write `/proc/sys/net/...` inside a namespace.

A `/proc/sys/net` file belongs to the network namespace of the task that opens it, so the
file is opened inside `netns.call`, by the calling thread while it is in the namespace.
Only `net.*` keys are accepted: every other sysctl is global, and writing it "inside a namespace"
would silently change the whole node.
"""

from __future__ import annotations

import errno
import os

from delegates.netlink import errors
from delegates.netlink import netns as _netns

__all__ = ["get_value", "path_of", "set_value"]

_ROOT = "/proc/sys"


def path_of(key: str) -> str:
    """The /proc/sys file of `key`: "net.ipv4.ip_forward" or "net/ipv4/ip_forward".

    In the dotted form every dot separates a level, so a key naming a link with a dot in
    its name (a VLAN link "eth0.100") must use the slash form.
    """
    parts = key.split("/") if "/" in key else key.split(".")
    if parts[0] != "net" or len(parts) < 2 or any(part in {"", ".", ".."} for part in parts):
        raise ValueError(f'invalid network sysctl key "{key}"')
    return os.path.join(_ROOT, *parts)


def get_value(netns: str | None, key: str) -> str:
    """The value of sysctl `key` in the namespace, without the trailing newline.

    Raises `NetlinkFailure` (errno ENOENT for an unknown key or link) if it cannot be read.
    """
    path = path_of(key)

    def read() -> str:
        return _read(path, key, op="read sysctl")

    return _netns.call(netns, read)


def set_value(netns: str | None, key: str, value: str) -> None:
    """Write `value` to sysctl `key` in the namespace, unless it already holds it."""
    path = path_of(key)

    def write() -> None:
        if _read(path, key, op="set sysctl") == value:
            return
        try:
            with open(path, "w", encoding="ascii") as file:
                file.write(value)
        except OSError as exc:
            raise errors.NetlinkFailure("set sysctl", key, exc.errno or errno.EIO) from exc

    _netns.call(netns, write)


def _read(path: str, key: str, *, op: str) -> str:
    try:
        with open(path, encoding="ascii") as file:
            return file.read().rstrip("\n")
    except OSError as exc:
        raise errors.NetlinkFailure(op, key, exc.errno or errno.EIO) from exc
