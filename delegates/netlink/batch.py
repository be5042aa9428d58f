"""The interface group of one invocation: every link it creates joins it, so DEL can
remove them all with one RTM_DELLINK (`links.delete_group`) instead of one per link.

Each link deletion costs the kernel an RCU grace period (about 25 ms); a group goes in one.
The meta-plugin picks a fresh group id per invocation (`new_group`), records it in its
cache, and runs its in-process delegates inside `grouped(id)`; `links.create_*` put what
they create into the current group unless given one. Links a delegate moves in rather than
creates (host-device) never join: the kernel refuses to delete a group holding a device
it cannot delete, and such a link must go back to the node anyway. Shared links (bridges)
never join either. Standard library only.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

__all__ = ["current", "grouped", "new_group"]

# Interface groups are u32; 0 is every link's default. netplex's ids have bit 30 set (and
# bit 31 clear, which `ip` would print as a negative number), so they never meet a small
# group an administrator uses (`ip link set group 5`).
_BASE = 0x4000_0000
_CURRENT: contextvars.ContextVar[int] = contextvars.ContextVar("netplex_interface_group", default=0)


def new_group() -> int:
    """A fresh group id for one invocation: 30 random bits, bit 30 set."""
    # os.urandom, not `secrets`: that imports hmac and hashlib on every exec'd call.
    return _BASE | int.from_bytes(os.urandom(4), "little") & (_BASE - 1)


def current() -> int:
    """The group links created now join: the innermost `grouped` id, 0 outside any."""
    return _CURRENT.get()


@contextlib.contextmanager
def grouped(group: int) -> Iterator[None]:
    """Links created inside (in this thread or context) join interface group `group`."""
    token = _CURRENT.set(group)
    try:
        yield
    finally:
        _CURRENT.reset(token)
