"""meta/node/probe.py: `netplex probe healthz|readyz` against a small stand-in of the
daemon's socket server (real HTTP over a unix socket in tmp_path)."""

from __future__ import annotations

import io
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from meta import cli
from meta.node import probe


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    ready = False

    def do_GET(self) -> None:
        status = 200 if self.path == "/healthz" or (self.path == "/readyz" and self.ready) else 503
        body = b'{"status": "stand-in"}'
        self.send_response_only(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "netplex.sock")
    server = _Server(path, _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_healthz_is_zero_and_readyz_follows_readiness(socket_path: str) -> None:
    out = io.StringIO()
    assert probe.run("healthz", socket_path=socket_path, stdout=out) == 0
    assert probe.run("readyz", socket_path=socket_path, stdout=out) == 1
    assert "readyz: HTTP 503" in out.getvalue()
    _Handler.ready = True
    try:
        assert probe.run("readyz", socket_path=socket_path, stdout=out) == 0
    finally:
        _Handler.ready = False


def test_a_missing_daemon_fails_the_probe_with_the_reason(tmp_path: Path) -> None:
    out = io.StringIO()
    assert probe.run("readyz", socket_path=str(tmp_path / "none.sock"), stdout=out) == 1
    assert "is not reachable: no such file or directory" in out.getvalue()


def test_the_cli_parses_probe_with_the_default_socket() -> None:
    parsed = cli.parser().parse_args(["probe", "readyz"])
    assert (parsed.command, parsed.check, parsed.socket) == ("probe", "readyz", probe.DEFAULT_SOCKET)
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["probe", "sideways"])
