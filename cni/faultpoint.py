"""Fault points: named steps inside the work (after the cache write, between delegates,
between IPAM and netlink) where the fault-injection lane (tests/faults/) kills the process.

`reached(name)` costs one environment lookup when the lane is off. With
`NETPLEX_FAULTPOINT_FILE` set, every point appends `<pid> <name>` to that file, so a test
knows which steps a run went through. With `NETPLEX_FAULTPOINT_KILL=<name>:<n>` as well,
the process sends itself SIGKILL the n-th time it reaches `name` (a kill -9 at exactly
that step, not somewhere in interpreter start-up). Standard library only; never raises.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["FILE_ENV", "KILL_ENV", "reached"]

FILE_ENV = "NETPLEX_FAULTPOINT_FILE"
KILL_ENV = "NETPLEX_FAULTPOINT_KILL"

_counts: dict[str, int] = {}
_guard = threading.Lock()


def reached(name: str) -> None:
    """Record that this process reached step `name`; die there if the lane says so."""
    path = os.environ.get(FILE_ENV)
    if not path:
        return
    with _guard:
        _counts[name] = count = _counts.get(name, 0) + 1
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()} {name}\n".encode())
        finally:
            os.close(fd)
    except OSError:
        pass
    target, _, nth = os.environ.get(KILL_ENV, "").partition(":")
    if target == name and count == (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
