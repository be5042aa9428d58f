"""The thin shim: `netplex` with `daemonSocket` in its config forwards the CNI request to
`netplex daemon` over that unix socket and prints the daemon's answer.

Standard library only, on the forwarding path: the runtime pays for a Python start and
one round trip, never for pydantic, pyroute2 or kubernetes (a test holds the line). The
daemon speaks HTTP/1.0 on the socket, one request per connection:

  POST /cni      {"env": {CNI_*}, "config": <the stdin config>}
                 -> 200 {"exitCode": 0|1, "output": <result or error JSON, or null>}
                 -> 503 while the daemon shuts down (it did not take the request)
  GET  /healthz  200 while the process serves
  GET  /readyz   200 once the watch caches are filled, 503 before and while shutting down
  POST /sync     the caches list again now (a barrier for tests and debugging)

When the daemon cannot be reached (no socket, connection refused, or a 503):
- ADD waits for it to become ready, up to `READY_WAIT` seconds (less with a shorter
  addTimeout), tries once more, then fails with error 11: the runtime retries later.
- DEL runs the DEL itself from the on-disk cache (`meta.plugin.delete`, which may import
  anything), with the daemon's own config, which the daemon leaves beside its socket
  (`snapshot_path`). It never reports success without having deleted.
- CHECK and GC fail with error 11, STATUS with error 50.
A request that reached the daemon but got no answer in time is error 11, never retried
here: the daemon may still be working on it.

The daemon merges its own config over the shim's the way Multus's daemon does
(`merge_config`): its keys win, except the ones that describe this one request."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

PATH_CNI = "/cni"
PATH_HEALTHZ = "/healthz"
PATH_READYZ = "/readyz"
PATH_SYNC = "/sync"
CNI_VARIABLES = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")
# Keys that belong to the request, not to the daemon's config (the answer must come in
# the runtime's version; runtimeConfig, prevResult and args are per call).
REQUEST_KEYS = frozenset(
    {"cniVersion", "cniVersions", "name", "type", "runtimeConfig", "prevResult", "args", "cni.dev/valid-attachments"}
)
DAEMON_ONLY_KEYS = frozenset({"socketPath", "nodeName", "concurrency", "metricsAddress"})
SNAPSHOT_SUFFIX = ".config.json"
READY_WAIT = 10.0  # seconds an ADD waits for an unreachable daemon to become ready
READY_POLL = 0.1
DEFAULT_ADD_TIMEOUT = 60.0
ANSWER_SLACK = 10.0  # seconds past addTimeout the shim waits for an answer
MAX_ANSWER_BYTES = 16 * 1024 * 1024
FALLBACK_VERSION = "1.0.0"  # for our own errors when the config names no usable version
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
INTERNAL = 999
_UNREACHABLE_ERRNOS = {errno.ENOENT, errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE, errno.ENOTSOCK}


class Unreachable(Exception):
    """The daemon did not take the request: no socket, refused, shutting down, or the
    connection closed with no answer. `delivered` is False when the request certainly
    never reached a worker (so even an ADD may be sent again)."""

    def __init__(self, reason: str, *, delivered: bool = False) -> None:
        super().__init__(reason)
        self.delivered = delivered


class NoAnswer(Exception):
    """The request reached the daemon, but no complete answer came back."""


def run(
    socket_path: str,
    raw: bytes,
    *,
    environ: Mapping[str, str],
    stdout: IO[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Forward one CNI request (stdin `raw`, already known to be a JSON object with
    `daemonSocket`); print the answer; return the exit code."""
    out = sys.stdout if stdout is None else stdout
    config: dict[str, Any] = json.loads(raw)
    command = environ.get("CNI_COMMAND", "")
    named = config.get("cniVersion")
    version = named if isinstance(named, str) else FALLBACK_VERSION
    add_timeout = _positive(config.get("addTimeout"), DEFAULT_ADD_TIMEOUT)
    request = {"env": {key: environ[key] for key in CNI_VARIABLES if key in environ}, "config": config}
    client = Client(socket_path, timeout=add_timeout + ANSWER_SLACK)
    try:
        try:
            exit_code, output = client.cni(request)
        except Unreachable as first:
            if command == "DEL":
                return _delete_locally(socket_path, config, environ=environ, stdout=out, reason=str(first))
            if command != "ADD":
                code = NOT_AVAILABLE if command == "STATUS" else TRY_AGAIN_LATER
                return _fail(out, version, code, f"netplex daemon at {socket_path!r} is not reachable: {first}")
            if first.delivered:  # the daemon may have started on it: the runtime retries
                return _fail(
                    out, version, TRY_AGAIN_LATER, f"netplex daemon at {socket_path!r} did not answer: {first}"
                )
            wait = min(READY_WAIT, add_timeout)
            if not client.wait_ready(wait, clock=clock, sleep=sleep):
                return _fail(
                    out, version, TRY_AGAIN_LATER,
                    f"netplex daemon at {socket_path!r} is not ready after {wait:g}s: {first}",
                )
            exit_code, output = client.cni(request)
    except Unreachable as err:
        return _fail(out, version, TRY_AGAIN_LATER, f"netplex daemon at {socket_path!r} is not reachable: {err}")
    except NoAnswer as err:
        return _fail(out, version, TRY_AGAIN_LATER, f"netplex daemon at {socket_path!r} did not answer: {err}")
    if output is not None:
        out.write(json.dumps(output) + "\n")
        out.flush()
    return exit_code


class Client:
    """HTTP over the daemon's unix socket, one connection per request."""

    def __init__(self, socket_path: str, *, timeout: float) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def cni(self, request: Mapping[str, Any]) -> tuple[int, Any]:
        """POST /cni: (exit code, output document or None)."""
        status, body = self.call("POST", PATH_CNI, request)
        if status == 503:
            raise Unreachable(_reason(body) or "the daemon is shutting down")
        if status != 200:
            raise NoAnswer(f"HTTP {status}: {_reason(body) or 'no reason'}")
        try:
            answer = json.loads(body)
            exit_code = int(answer["exitCode"])
            return exit_code, answer.get("output")
        except (ValueError, KeyError, TypeError) as exc:
            raise NoAnswer("its answer is not the daemon protocol") from exc

    def ready(self) -> bool:
        try:
            status, _ = self.call("GET", PATH_READYZ)
        except (Unreachable, NoAnswer):
            return False
        return status == 200

    def wait_ready(
        self,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> bool:
        deadline = clock() + timeout
        while True:
            if self.ready():
                return True
            remaining = deadline - clock()
            if remaining <= 0:
                return False
            sleep(min(READY_POLL, remaining))

    def call(self, method: str, path: str, doc: Any = None) -> tuple[int, bytes]:
        """One request; raises `Unreachable` when it could not be delivered and
        `NoAnswer` when it was, but the answer did not come back whole. HTTP/1.0 by hand:
        the daemon answers one request per connection and closes it, and `http.client`
        would cost the shim ~25 ms of imports (email, ssl)."""
        body = json.dumps(doc).encode() if doc is not None else b""
        head = f"{method} {path} HTTP/1.0\r\nHost: netplex\r\nContent-Type: application/json\r\n"
        request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
            except OSError as exc:
                raise Unreachable(_describe(exc)) from exc
            try:
                sock.sendall(request)
            except OSError as exc:  # it hung up before reading it all: it never started on it
                raise Unreachable(_describe(exc)) from exc
            answer = _read_all(sock)
        finally:
            sock.close()
        return _parse_answer(answer)


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError as exc:
            if not chunks and exc.errno in _UNREACHABLE_ERRNOS:
                raise Unreachable("the daemon closed the connection", delivered=True) from exc
            raise NoAnswer(_describe(exc)) from exc
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise NoAnswer(f"its answer is larger than {MAX_ANSWER_BYTES} bytes")
    if not chunks:  # closed before any answer (a daemon shutting down drops its backlog)
        raise Unreachable("the daemon closed the connection", delivered=True)
    return b"".join(chunks)


def _parse_answer(answer: bytes) -> tuple[int, bytes]:
    head, separator, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if not separator or len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        raise NoAnswer("its answer is not HTTP")
    return int(status_line[1]), body


def merge_config(request: Mapping[str, Any], daemon: Mapping[str, Any]) -> dict[str, Any]:
    """The config the daemon acts on: the shim's, with the daemon's meta keys over it
    (as Multus's daemon config overrides its shim's), except the request's own keys;
    `daemonSocket` goes (the daemon does the work) and so do the daemon-only keys."""
    merged = dict(request)
    for key, value in daemon.items():
        if key not in REQUEST_KEYS and key not in DAEMON_ONLY_KEYS:
            merged[key] = value
    merged.pop("daemonSocket", None)
    merged.pop("socketDir", None)  # Multus's spelling of daemonSocket (meta/multuskeys.py)
    return merged


def snapshot_path(socket_path: str) -> str:
    """Where the daemon leaves its meta config for the shim's DEL fallback."""
    return socket_path + SNAPSHOT_SUFFIX


def read_snapshot(socket_path: str) -> dict[str, Any]:
    """The daemon's meta config as it left it; empty when there is none."""
    try:
        with open(snapshot_path(socket_path), encoding="utf-8") as handle:
            doc = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _delete_locally(
    socket_path: str, config: dict[str, Any], *, environ: Mapping[str, str], stdout: IO[str], reason: str
) -> int:
    """DEL without the daemon: the meta-plugin's own DEL from the cache, under the same
    sandbox lock the daemon takes. Loads the full plugin (this path may import anything)."""
    from cni import skel
    from cni.errors import CniError, Code
    from meta import config as meta_config
    from meta import daemon_lock, plugin

    merged = merge_config(config, read_snapshot(socket_path))

    def delete(args: skel.CmdArgs) -> None:
        conf = meta_config.load_meta_conf(args.stdin)
        deadline = time.monotonic() + conf.add_timeout
        with daemon_lock.sandbox_lock(conf.cni_dir, args.container_id, deadline=deadline):
            plugin.delete(conf, args)

    def refuse(args: skel.CmdArgs) -> dict[str, Any]:
        raise CniError(Code.INTERNAL, f"{args.command} does not fall back to the shim")  # only DEL comes here

    print(f"netplex: daemon at {socket_path!r} unreachable ({reason}); deleting from the cache", file=sys.stderr)
    return skel.run(
        skel.Plugin(add=refuse, delete=delete, about="netplex"),
        environ=environ, stdin=io.BytesIO(json.dumps(merged).encode()), stdout=stdout,
    )


def _fail(out: IO[str], version: str, code: int, msg: str) -> int:
    out.write(json.dumps({"cniVersion": version, "code": code, "msg": msg}) + "\n")
    out.flush()
    return 1


def _positive(value: Any, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return default


def _reason(body: bytes) -> str:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        return str(json.loads(body).get("reason", ""))[:300]
    return body[:300].decode(errors="replace")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):  # socket.timeout is its alias
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__
