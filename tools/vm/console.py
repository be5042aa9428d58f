"""The guest's serial console, read on the host: boot noise, the job's output, its exit status.

The guest's init prints `NETPLEX-VM-START-<nonce>` on a line of its own just before the
job and `NETPLEX-VM-EXIT-<nonce>=<status>` right after it (the nonce is fresh per run, so
output that merely mentions the markers is not mistaken for them). `Console.feed` takes
raw bytes as they arrive and returns what to show the user now: only the job's output,
passed through as soon as it cannot be the start of the exit marker, so pytest's progress
dots appear live. Everything is also kept in a bounded tail for failure reports. Pure.
"""

from __future__ import annotations

import re

TAIL_BYTES = 64 * 1024


class Console:
    """A streaming splitter of the serial console around one run's start and exit markers."""

    def __init__(self, nonce: str) -> None:
        self._start = f"NETPLEX-VM-START-{nonce}".encode()
        self._exit = f"NETPLEX-VM-EXIT-{nonce}=".encode()
        self._exit_line = re.compile(re.escape(self._exit) + rb"(\d+)\r?\n")
        self._pending = b""
        self._tail = bytearray()
        self.started = False
        self.status: int | None = None

    def feed(self, data: bytes) -> bytes:
        """Take console bytes; return the part of the job's output that can be shown now."""
        self._tail += data
        del self._tail[:-TAIL_BYTES]
        if self.status is not None:
            return b""
        self._pending += data
        if not self.started:
            self._find_start()
        return self._take_output() if self.started else b""

    def tail(self, lines: int = 40) -> str:
        """The last `lines` lines of everything the console printed, as text."""
        text = self._tail.decode(errors="replace").replace("\r\n", "\n")
        return "\n".join(text.rstrip("\n").split("\n")[-lines:])

    def _find_start(self) -> None:
        at = self._pending.find(self._start)
        if at < 0:
            self._pending = self._pending[-len(self._start) :]  # boot noise: only in the tail
            return
        newline = self._pending.find(b"\n", at)
        if newline >= 0:
            self.started = True
            self._pending = self._pending[newline + 1 :]

    def _take_output(self) -> bytes:
        out = bytearray()
        while self._pending:
            at = self._pending.find(self._exit)
            if at < 0:
                keep = _overlap(self._pending, self._exit)
                out += self._pending[: len(self._pending) - keep]
                self._pending = self._pending[len(self._pending) - keep :]
                break
            out += self._pending[:at]
            self._pending = self._pending[at:]
            newline = self._pending.find(b"\n")
            if newline < 0:
                break  # maybe the marker, not complete yet
            match = self._exit_line.match(self._pending)
            if match:
                self.status = int(match.group(1))
                self._pending = b""
                break
            out += self._pending[: newline + 1]  # the token without a status: plain output
            self._pending = self._pending[newline + 1 :]
        return bytes(out)


def _overlap(data: bytes, token: bytes) -> int:
    """Length of the longest suffix of `data` that is a proper prefix of `token`."""
    for size in range(min(len(data), len(token) - 1), 0, -1):
        if data.endswith(token[:size]):
            return size
    return 0
