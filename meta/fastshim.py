"""The shim's fast path: copy the request to `netplex daemon` and its answer to stdout.

What an exec'd `netplex` with `daemonSocket` pays for: the interpreter's start, this module
(`_socket`, `os`, `sys`, nothing else: no `json`, `typing`, `socket`, `logging`), one
connection. The request goes as raw bytes to `POST /cni/raw` (`meta.rawproto` answers it):
the CNI variables, then the runtime's stdin untouched; the answer is the bytes the plugin
would print, with its exit code in a header. Anything unusual (no daemon, a daemon
shutting down or too old for /cni/raw) returns None, and the caller runs the full shim
(meta/shim.py: waiting for readiness, DEL from the cache), which then decides; a request
that may have reached the daemon is never sent twice, except a DEL (idempotent).

VERSION is answered here too, as a constant, without the skeleton (`version_answer`).
Everything here must keep working under `python -I -S`.
"""

import _socket
import os

PATH_RAW = "/cni/raw"
EXIT_HEADER = b"x-cni-exit-code"
CNI_VARIABLES = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")
# As cni.version (a unit test keeps them equal): VERSION must not import the skeleton.
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT_VERSION = "1.1.0"
FALLBACK_VERSION = "1.0.0"
MAX_DEPTH = 64  # as cni.jsonlimits: CNI configs nest far less
DEFAULT_ADD_TIMEOUT = 60.0
ANSWER_SLACK = 10.0
MAX_ANSWER_BYTES = 16 * 1024 * 1024
DECODING_FAILURE = 6
TRY_AGAIN_LATER = 11


def version_answer(requested: object) -> bytes:
    """The VERSION document, as `cni.version.version_info` builds it, with a newline."""
    answer = requested if isinstance(requested, str) and requested in SUPPORTED_VERSIONS else CURRENT_VERSION
    listed = ", ".join(f'"{v}"' for v in SUPPORTED_VERSIONS)
    return f'{{"cniVersion": "{answer}", "supportedVersions": [{listed}]}}\n'.encode()


def error(version: object, code: int, msg: str) -> bytes:
    """A CNI error document (ASCII-escaped by hand: no `json` on this path)."""
    named = version if isinstance(version, str) and version in SUPPORTED_VERSIONS else FALLBACK_VERSION
    escaped = "".join(
        ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else f"\\u{ord(ch):04x}" for ch in msg
    )
    return f'{{"cniVersion": "{named}", "code": {code}, "msg": "{escaped}"}}\n'.encode()


def body_of(environ: object, raw: bytes) -> bytes:
    """The /cni/raw request body: `KEY=VALUE\\0` per CNI variable, an empty entry, stdin."""
    parts = []
    for key in CNI_VARIABLES:
        value = environ.get(key)  # type: ignore[attr-defined]
        if value is not None:
            parts.append(f"{key}={value}\0".encode(errors="surrogateescape"))
    parts.append(b"\0")
    parts.append(raw)
    return b"".join(parts)


def forward(socket_path: str, raw: bytes, peeked: dict[str, object], environ: object) -> int | None:
    """Send one request; write the answer to fd 1 and return the exit code, or None for
    the full shim to take over (see the module docstring)."""
    version = peeked.get("cniVersion")
    command = environ.get("CNI_COMMAND", "")  # type: ignore[attr-defined]
    if (raw.count(b"{") + raw.count(b"[") > MAX_DEPTH) and _deeper_than(raw, MAX_DEPTH):
        return write(error(version, DECODING_FAILURE, f"the config nests deeper than {MAX_DEPTH} levels"), 1)
    timeout = peeked.get("addTimeout")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        timeout = DEFAULT_ADD_TIMEOUT
    body = body_of(environ, raw)
    head = f"POST {PATH_RAW} HTTP/1.0\r\nHost: netplex\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(float(timeout) + ANSWER_SLACK)
        try:
            sock.connect(socket_path)
            sock.sendall(head + body)
        except OSError:
            return None  # not delivered: the full shim waits, retries or deletes locally
        chunks = []
        size = 0
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    break
        except OSError as exc:
            if not chunks and command == "DEL":
                return None  # the full shim asks again, or deletes from the cache
            return _no_answer(socket_path, version, "timed out" if isinstance(exc, TimeoutError) else str(exc))
    finally:
        sock.close()
    answer = b"".join(chunks)
    if not answer:
        return None if command == "DEL" else _no_answer(socket_path, version, "the daemon closed the connection")
    head_bytes, separator, stdout = answer.partition(b"\r\n\r\n")
    lines = head_bytes.split(b"\r\n")
    status = lines[0].split()
    if not separator or len(status) < 2 or not status[0].startswith(b"HTTP/"):
        return _no_answer(socket_path, version, "its answer is not HTTP")
    if status[1] in (b"503", b"404"):  # shutting down, or a daemon without /cni/raw
        return None
    exit_code = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == EXIT_HEADER:
            exit_code = int(value.strip()) if value.strip().isdigit() else None
    if status[1] != b"200" or exit_code is None or size > MAX_ANSWER_BYTES:
        return _no_answer(socket_path, version, f"HTTP {status[1].decode(errors='replace')}")
    return write(stdout, exit_code)


def _deeper_than(raw: bytes, limit: int) -> bool:
    from meta import rawjson

    return rawjson.depth_of(raw) > limit


def _no_answer(socket_path: str, version: object, reason: str) -> int:
    return write(error(version, TRY_AGAIN_LATER, f"netplex daemon at {socket_path!r} did not answer: {reason}"), 1)


def write(data: bytes, code: int) -> int:
    """Write `data` to fd 1 whole; returns `code`."""
    view = memoryview(data)
    while view:
        written = os.write(1, view)
        view = view[written:]
    return code
