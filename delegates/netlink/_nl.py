"""Private helpers shared by links, addrs and routes: error translation and name lookup.

Runs inside `netns.run` workers only; nothing here leaves `delegates.netlink`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from delegates.netlink import errors


@contextlib.contextmanager
def translated(op: str, target: str) -> Iterator[None]:
    """Turn a pyroute2 `NetlinkError` into our `NetlinkFailure`, by errno."""
    try:
        yield
    except NetlinkError as exc:
        raise errors.from_errno(exc.code, op=op, target=target) from exc


def index_of(ipr: IPRoute, name: str) -> int | None:
    """The ifindex of link `name` in the worker's namespace, or None."""
    try:
        found = ipr.link_lookup(ifname=name)
    except NetlinkError:
        return None
    return int(found[0]) if found else None


def require_index(ipr: IPRoute, name: str, *, op: str) -> int:
    """The ifindex of `name`, or `LinkNotFound` naming the link and the operation."""
    index = index_of(ipr, name)
    if index is None:
        raise errors.LinkNotFound(op, name)
    return index


def code_of(exc: BaseException) -> int | None:
    """The errno of a pyroute2 `NetlinkError`, None for anything else."""
    return exc.code if isinstance(exc, NetlinkError) else None


def nested(msg: Any, *path: str) -> Any:
    """A nested NLA value (`IFLA_LINKINFO`, `IFLA_INFO_DATA`, ...) or None if absent."""
    return msg.get_nested(*path)
