"""Exceptions raised by the netlink layer: plain errno-carrying errors, no pyroute2, no CNI.

Delegates catch these and turn them into `CniError`s; this module must stay importable
without pyroute2 so that catching a netlink failure costs nothing at import time.
Low-level errors are translated by errno (`from_errno`), never by message text.
"""

from __future__ import annotations

import errno as errnos
import os


class NetlinkFailure(OSError):
    """A netlink request failed: `op` on `target` with kernel error `errno`.

    `str()` reads `failed to <op> "<target>": <reason>`, lowercase, ready to be the
    message of a CNI error.
    """

    def __init__(self, op: str, target: str, errno: int, message: str | None = None) -> None:
        reason = message if message is not None else os.strerror(errno).lower()
        super().__init__(errno, reason)
        self.op = op
        self.target = target
        self.message = reason

    def __str__(self) -> str:
        return f'failed to {self.op} "{self.target}": {self.message}'

    def __reduce__(self) -> tuple[type[NetlinkFailure], tuple[str, str, int, str]]:
        return (type(self), (self.op, self.target, int(self.errno or 0), self.message))


class LinkNotFound(NetlinkFailure):
    """The named link (or the master it refers to) does not exist: errno ENODEV."""

    def __init__(self, op: str, target: str, errno: int = errnos.ENODEV, message: str | None = None) -> None:
        super().__init__(op, target, errno, message if message is not None else "no such link")


class LinkExists(NetlinkFailure):
    """A link with the requested name already exists: errno EEXIST."""

    def __init__(self, op: str, target: str, errno: int = errnos.EEXIST, message: str | None = None) -> None:
        super().__init__(op, target, errno, message if message is not None else "link already exists")


class WrongLinkKind(NetlinkFailure):
    """A link exists under the wanted name but is of another kind (errno EEXIST)."""

    def __init__(self, op: str, target: str, errno: int = errnos.EEXIST, message: str | None = None) -> None:
        super().__init__(op, target, errno, message)


class KindNotSupported(NetlinkFailure):
    """The kernel does not know the link kind (module missing): errno EOPNOTSUPP."""

    def __init__(self, op: str, target: str, errno: int = errnos.EOPNOTSUPP, message: str | None = None) -> None:
        super().__init__(op, target, errno, message)


class NetnsNotFound(LookupError):
    """A network namespace path does not exist or is not a network namespace."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path

    def __str__(self) -> str:
        return f'network namespace "{self.path}" not found'


def from_errno(code: int, *, op: str, target: str) -> NetlinkFailure:
    """The specific `NetlinkFailure` subclass for a kernel errno (ENODEV, EEXIST, ...)."""
    if code == errnos.ENODEV:
        return LinkNotFound(op, target)
    if code == errnos.EEXIST:
        return LinkExists(op, target)
    return NetlinkFailure(op, target, code)
