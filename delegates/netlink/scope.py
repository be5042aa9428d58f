"""The scope of one CNI invocation for the netlink layer: what `meta` wraps a request in.

`invocation(group)` opens a request scope (`_conn.session`: one netlink socket per
namespace, all closed when it ends, so nothing outlives the request) and, when `group`
is set, makes the links created inside join that interface group (`batch.grouped`), so
DEL can remove them in one RTM_DELLINK. Standard library only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from delegates.netlink import _conn, batch

__all__ = ["invocation", "new_group"]

new_group = batch.new_group


@contextlib.contextmanager
def invocation(group: int = 0) -> Iterator[None]:
    """One request: sockets shared within it and closed at its end; links created inside
    join `group` (0: no group)."""
    with _conn.session():
        if group:
            with batch.grouped(group):
                yield
        else:
            yield
