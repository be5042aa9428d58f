"""The daemon's unix-socket HTTP server: the shim protocol (meta/shim.py) on a socket
that only root (or the daemon's own user) may use.

The socket is created mode 0600 (bound under a umask, then chmod'ed), and every
connection's peer credentials are checked as well: a peer of another UID is refused
(403) even if the file mode was loosened. A live socket at the path means another daemon
is serving, and start-up fails; a stale one (nothing listening) is replaced. Each
connection carries one request; every request runs in its own thread, and the daemon
(not this module) bounds how many do work at once. `close()` stops accepting, removes
the socket and waits for the requests in flight."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import socketserver
import struct
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from cni import jsonlimits, version
from cni.errors import CniError, Code
from meta import fastshim, rawproto, shim

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
IDLE_TIMEOUT = 30.0  # seconds a connection may take to send its request
SYNC_TIMEOUT = 10.0
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Service(Protocol):
    """What the server asks of the daemon."""

    @property
    def accepting(self) -> bool: ...

    @property
    def ready(self) -> bool: ...

    def handle_cni(self, request: dict[str, Any]) -> tuple[int, Any]: ...

    def resync(self, timeout: float) -> bool: ...


class SocketInUse(OSError):
    """Another daemon answers on the socket path."""


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = False
    block_on_close = True  # server_close() waits for the requests in flight
    request_queue_size = 128

    def __init__(self, socket_path: str, service: Service) -> None:
        self.socket_path = socket_path
        self.service = service
        self.allowed_uids = {0, os.geteuid()}
        _clear_stale(socket_path)
        os.makedirs(os.path.dirname(socket_path) or ".", mode=0o755, exist_ok=True)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window with a looser mode
        try:
            super().__init__(socket_path, Handler)
        finally:
            os.umask(old_umask)
        os.chmod(socket_path, 0o600)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, args=(0.2,), name="netplex-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, remove the socket, then wait for the requests in flight."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("netplex daemon: error while serving a connection")


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.0"  # one request per connection
    timeout = IDLE_TIMEOUT

    def do_GET(self) -> None:
        if not self._peer_allowed():
            return
        service = self.server.service
        if self.path == shim.PATH_HEALTHZ:
            self._send(200, {"status": "ok"})
        elif self.path == shim.PATH_READYZ:
            if service.ready:
                self._send(200, {"status": "ready"})
            else:
                reason = "shutting down" if not service.accepting else "watch caches are syncing"
                self._send(503, {"status": "not ready", "reason": reason})
        else:
            self._send(404, {"reason": f"no such path {self.path[:100]!r}"})

    def do_POST(self) -> None:
        if not self._peer_allowed():
            return
        service = self.server.service
        if self.path not in (shim.PATH_CNI, shim.PATH_SYNC, fastshim.PATH_RAW):
            self._send(404, {"reason": f"no such path {self.path[:100]!r}"})
            return
        if not service.accepting:
            self._send(503, {"reason": "the daemon is shutting down"})
            return
        if self.path == fastshim.PATH_RAW:  # the fast shim: bytes in, bytes out (i12)
            self._answer_raw()
            return
        if self.path == shim.PATH_SYNC:
            synced = service.resync(SYNC_TIMEOUT)
            self._send(200 if synced else 503, {"synced": synced})
            return
        request = self._read_json()
        if request is None:
            return
        exit_code, output = service.handle_cni(request)
        self._send(200, {"exitCode": exit_code, "output": output})

    def _answer_raw(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        answer = None
        if 0 < length <= MAX_BODY_BYTES:
            answer = rawproto.handle(self.rfile.read(length), self.server.service.handle_cni)
        if answer is None:
            self._send(400, {"reason": "want a /cni/raw body: KEY=VALUE\\0 entries, an empty one, then stdin"})
            return
        exit_code, stdout = answer
        self.send_response_only(200)
        self.send_header(rawproto.EXIT_HEADER, str(exit_code))
        self.send_header("Content-Length", str(len(stdout)))
        self.end_headers()
        self.wfile.write(stdout)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the daemon logs each CNI request itself."""

    def _read_json(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY_BYTES:
            self._send(400, {"reason": f"want a JSON body of 1 to {MAX_BODY_BYTES} bytes"})
            return None
        try:
            doc = parse_request(self.rfile.read(length))
        except CniError as err:
            self._refuse(err)
            return None
        return doc

    def _refuse(self, err: CniError) -> None:
        """A body that cannot be a request: answered as the CNI error the plugin would
        print (6), so the shim reports it and the runtime does not retry as for 11."""
        log.warning("netplex daemon: refused a request: %s", err.msg)
        self._send(200, {"exitCode": 1, "output": err.to_wire(version.CURRENT_VERSION)})

    def _peer_allowed(self) -> bool:
        try:
            creds = self.connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
            _pid, uid, _gid = _UCRED.unpack(creds)
        except OSError:
            uid = -1
        if uid in self.server.allowed_uids:
            return True
        log.warning("netplex daemon: refused a connection from uid %s", uid)
        self._send(403, {"reason": "only root may talk to the netplex daemon"})
        return False

    def _send(self, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def parse_request(body: bytes) -> dict[str, Any]:
    """A POST /cni body as the request document; error 6 for anything else. Size and
    nesting are bounded before parsing: a deep body gets an answer, not a RecursionError."""
    doc = jsonlimits.loads(body, max_bytes=MAX_BODY_BYTES, what="the request body")
    if not isinstance(doc, dict) or not isinstance(doc.get("env"), dict) or not isinstance(doc.get("config"), dict):
        raise CniError(Code.DECODING_FAILURE, 'the request body: want {"env": {...}, "config": {...}}')
    return doc


def _clear_stale(socket_path: str) -> None:
    """Remove a socket nobody listens on; refuse when a daemon answers there."""
    if not os.path.exists(socket_path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(socket_path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOTSOCK, errno.ENOENT):
            raise
    else:
        raise SocketInUse(errno.EADDRINUSE, "another netplex daemon is serving", socket_path)
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
