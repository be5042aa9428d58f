"""Bounds on a JSON document checked before it is parsed: its size and how deeply its
arrays and objects nest. Python's json module recurses once per level, so 200,000 '['
would exhaust the stack (RecursionError) before it could say the text is bad; this check
answers first, in linear time, without recursion.

Standard library only and free of CNI logic beyond the error it raises, so the stdlib-only
shim can import it too. `check` raises CniError 6 (decoding failure) naming `what`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cni.errors import CniError, Code

__all__ = ["MAX_DEPTH", "check", "depth_of", "loads"]

MAX_DEPTH = 64  # CNI configs, results and annotations nest far less
# A string (escapes included) or one bracket; everything else is skipped by the regex engine.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def depth_of(data: bytes, *, stop_at: int | None = None) -> int:
    """The deepest nesting of arrays and objects in `data` (strings are skipped). With
    `stop_at`, returns as soon as that depth is passed."""
    opens = data.count(b"[") + data.count(b"{")
    if stop_at is not None and opens <= stop_at:
        return opens  # cannot nest deeper than it has brackets: no scan needed
    depth = deepest = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_at is not None and deepest > stop_at:
                    return deepest
        elif token in (b"]", b"}"):
            depth = max(0, depth - 1)
    return deepest


def check(data: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH, what: str = "the JSON document") -> None:
    """Error 6 when `data` is larger than `max_bytes` or nests deeper than `max_depth`."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise CniError(Code.DECODING_FAILURE, f"{what} is larger than {max_bytes} bytes")
    if depth_of(raw, stop_at=max_depth) > max_depth:
        raise CniError(Code.DECODING_FAILURE, f"{what} nests deeper than {max_depth} levels")


def loads(data: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH, what: str = "the JSON document") -> Any:
    """`data` parsed after `check`; bad JSON is error 6 too."""
    check(data, max_bytes=max_bytes, max_depth=max_depth, what=what)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise CniError(Code.DECODING_FAILURE, f"{what} is not valid JSON", str(exc)[:500]) from exc
