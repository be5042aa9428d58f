"""The daemon's side of `POST /cni/raw` (meta.fastshim): bytes in, bytes out.

The body is the CNI variables as `KEY=VALUE\\0` entries, an empty entry, then the runtime's
stdin untouched. The answer is what the plugin would have printed on stdout and its exit
code (the `X-CNI-Exit-Code` header), so the shim parses nothing. A stdin that is not a
JSON object gets the skeleton's own error (code 6), as the thin plugin would print it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cni import skel
from cni.errors import CniError
from meta import fastshim

__all__ = ["EXIT_HEADER", "handle", "parse_body"]

EXIT_HEADER = "X-CNI-Exit-Code"
MAX_VARIABLES = 64


def parse_body(body: bytes) -> tuple[dict[str, str], bytes] | None:
    """(CNI variables, stdin) of a /cni/raw body; None when it is not one."""
    env: dict[str, str] = {}
    index = 0
    for _ in range(MAX_VARIABLES + 1):
        end = body.find(b"\0", index)
        if end < 0:
            return None
        entry = body[index:end]
        index = end + 1
        if not entry:
            return env, body[index:]
        key, separator, value = entry.partition(b"=")
        if not separator:
            return None
        env[key.decode(errors="surrogateescape")] = value.decode(errors="surrogateescape")
    return None


def handle(body: bytes, handle_cni: Callable[[dict[str, Any]], tuple[int, Any]]) -> tuple[int, bytes] | None:
    """(exit code, stdout bytes) for one /cni/raw body, through the daemon's `handle_cni`;
    None when the body is malformed (the server answers 400)."""
    parsed = parse_body(body)
    if parsed is None:
        return None
    env, stdin = parsed
    try:
        config = skel.load_json(stdin)
    except CniError as err:
        version = _peek(stdin)
        return 1, (json.dumps(err.to_wire(version)) + "\n").encode()
    exit_code, output = handle_cni({"env": {k: v for k, v in env.items() if k in fastshim.CNI_VARIABLES},
                                    "config": config})
    return exit_code, b"" if output is None else (json.dumps(output) + "\n").encode()


def _peek(stdin: bytes) -> str:
    try:
        doc = json.loads(stdin)
    except (ValueError, RecursionError):
        return fastshim.FALLBACK_VERSION
    named = doc.get("cniVersion") if isinstance(doc, dict) else None
    return named if isinstance(named, str) and named in fastshim.SUPPORTED_VERSIONS else fastshim.FALLBACK_VERSION
