"""meta.shim and meta.main's peek: forwarding to a daemon, and what happens without one.

The daemon here is a small fake speaking the shim protocol on a unix socket in tmp_path
(no network, no subprocess); each test says how it answers."""

from __future__ import annotations

import io
import json
import socketserver
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from meta import main as netplex_main
from meta import shim

ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_ARGS": "K8S_POD_NAME=web",
    "CNI_PATH": "/opt/cni/bin",
    "HOME": "/root",
}
RESULT = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}], "ips": []}

Responder = Callable[["_Handler", str, Any], None]


class _Handler(BaseHTTPRequestHandler):
    server: _FakeDaemon
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.server.seen.append(("GET", self.path, None))
        self.server.respond(self, self.path, None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        doc = json.loads(self.rfile.read(length)) if length else None
        self.server.seen.append(("POST", self.path, doc))
        self.server.respond(self, self.path, doc)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def send(self, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response_only(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _FakeDaemon(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, respond: Responder) -> None:
        super().__init__(path, _Handler)
        self.respond = respond
        self.seen: list[tuple[str, str, Any]] = []


@pytest.fixture
def socket_path(tmp_path: Path) -> str:
    return str(tmp_path / "netplex.sock")


@pytest.fixture
def fake_daemon(socket_path: str) -> Iterator[Callable[[Responder], _FakeDaemon]]:
    servers: list[_FakeDaemon] = []

    def start(respond: Responder) -> _FakeDaemon:
        server = _FakeDaemon(socket_path, respond)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _config(socket_path: str, **keys: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "daemonSocket": socket_path} | keys


def _run(socket_path: str, config: dict[str, Any], command: str = "ADD", **kwargs: Any) -> tuple[int, Any]:
    out = io.StringIO()
    code = shim.run(socket_path, json.dumps(config).encode(), environ={**ENV, "CNI_COMMAND": command},
                    stdout=out, **kwargs)
    text = out.getvalue()
    return code, json.loads(text) if text.strip() else None


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# -- the peek in meta.main ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"daemonSocket": "/run/netplex/netplex.sock"}', "/run/netplex/netplex.sock"),
        (b'{"name": "netplex"}', ""),
        (b'{"daemonSocket": 7}', ""),
        (b"not json", ""),
        (b'["daemonSocket"]', ""),
        (b"", ""),
    ],
)
def test_main_finds_daemon_socket_only_in_a_json_object(raw: bytes, expected: str) -> None:
    assert netplex_main.daemon_socket(raw) == expected


# -- merging the daemon's config --------------------------------------------------------


def test_daemon_keys_override_the_shims_but_not_the_requests_own() -> None:
    request = {
        "cniVersion": "0.4.0", "name": "k8s-pod-network", "type": "netplex", "daemonSocket": "/s",
        "cniDir": "/from/shim", "namespaceIsolation": False, "runtimeConfig": {"ips": ["10.0.0.2/24"]},
    }
    daemon = {
        "cniVersion": "1.0.0", "name": "other", "cniDir": "/from/daemon", "clusterNetwork": "cbr0",
        "runtimeConfig": {"ignored": True}, "socketPath": "/s", "concurrency": 4,
    }
    merged = shim.merge_config(request, daemon)
    assert merged == {
        "cniVersion": "0.4.0", "name": "k8s-pod-network", "type": "netplex",
        "cniDir": "/from/daemon", "clusterNetwork": "cbr0", "namespaceIsolation": False,
        "runtimeConfig": {"ips": ["10.0.0.2/24"]},
    }


# -- forwarding ---------------------------------------------------------------------------


def test_forwards_the_cni_variables_and_config_and_prints_the_answer(
    socket_path: str, fake_daemon: Callable[[Responder], _FakeDaemon]
) -> None:
    daemon = fake_daemon(lambda handler, path, doc: handler.send(200, {"exitCode": 0, "output": RESULT}))
    code, printed = _run(socket_path, _config(socket_path, cniDir="/x"))
    assert (code, printed) == (0, RESULT)
    [(method, path, sent)] = daemon.seen
    assert (method, path) == ("POST", shim.PATH_CNI)
    assert sent["env"] == {key: value for key, value in ENV.items() if key.startswith("CNI_")}  # no HOME
    assert sent["config"] == _config(socket_path, cniDir="/x")


def test_a_failure_answer_is_printed_with_exit_status_1(
    socket_path: str, fake_daemon: Callable[[Responder], _FakeDaemon]
) -> None:
    error = {"cniVersion": "1.0.0", "code": 7, "msg": "clusterNetwork: set clusterNetwork or delegates"}
    fake_daemon(lambda handler, path, doc: handler.send(200, {"exitCode": 1, "output": error}))
    assert _run(socket_path, _config(socket_path)) == (1, error)


def test_a_del_answer_without_output_prints_nothing(
    socket_path: str, fake_daemon: Callable[[Responder], _FakeDaemon]
) -> None:
    fake_daemon(lambda handler, path, doc: handler.send(200, {"exitCode": 0, "output": None}))
    assert _run(socket_path, _config(socket_path), "DEL") == (0, None)


def test_an_answer_outside_the_protocol_is_try_again_later(
    socket_path: str, fake_daemon: Callable[[Responder], _FakeDaemon]
) -> None:
    fake_daemon(lambda handler, path, doc: handler.send(500, {"reason": "boom"}))
    code, printed = _run(socket_path, _config(socket_path))
    assert code == 1
    assert printed["code"] == shim.TRY_AGAIN_LATER
    assert "HTTP 500: boom" in printed["msg"]


# -- no daemon ------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "code"), [("STATUS", 50), ("CHECK", 11), ("GC", 11)])
def test_without_a_daemon_other_commands_fail_with_their_code(socket_path: str, command: str, code: int) -> None:
    status, printed = _run(socket_path, _config(socket_path, cniVersion="1.1.0"), command)
    assert status == 1
    assert printed["code"] == code
    assert printed["cniVersion"] == "1.1.0"
    assert "not reachable" in printed["msg"]


def test_without_a_daemon_add_waits_for_readiness_then_is_try_again_later(socket_path: str) -> None:
    clock = _FakeClock()
    code, printed = _run(socket_path, _config(socket_path, addTimeout=3.0), clock=clock, sleep=clock.sleep)
    assert (code, printed["code"]) == (1, shim.TRY_AGAIN_LATER)
    assert "not ready after 3s" in printed["msg"]
    assert sum(clock.sleeps) == pytest.approx(3.0)  # the bound: min(READY_WAIT, addTimeout)


def test_add_sent_while_the_daemon_shuts_down_waits_and_is_sent_again(
    socket_path: str, fake_daemon: Callable[[Responder], _FakeDaemon]
) -> None:
    answers = {"cni": 0, "readyz": 0}

    def respond(handler: _Handler, path: str, doc: Any) -> None:
        if path == shim.PATH_READYZ:
            answers["readyz"] += 1
            handler.send(200 if answers["readyz"] > 2 else 503, {})
        else:
            answers["cni"] += 1
            if answers["cni"] == 1:
                handler.send(503, {"reason": "the daemon is shutting down"})
            else:
                handler.send(200, {"exitCode": 0, "output": RESULT})

    fake_daemon(respond)
    clock = _FakeClock()
    assert _run(socket_path, _config(socket_path), clock=clock, sleep=clock.sleep) == (0, RESULT)
    assert answers == {"cni": 2, "readyz": 3}


def test_add_whose_connection_closed_unanswered_is_not_sent_again(
    socket_path: str, fake_daemon: Callable[[Responder], _FakeDaemon]
) -> None:
    def hang_up(handler: _Handler, path: str, doc: Any) -> None:
        """Read the request, answer nothing: the connection closes."""

    daemon = fake_daemon(hang_up)
    code, printed = _run(socket_path, _config(socket_path))
    assert (code, printed["code"]) == (1, shim.TRY_AGAIN_LATER)
    assert "did not answer" in printed["msg"]
    assert len(daemon.seen) == 1  # the daemon may have started on it: never a second ADD


def test_del_without_a_daemon_deletes_from_the_cache_with_the_daemons_config(
    socket_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cni_dir = tmp_path / "cni"
    Path(shim.snapshot_path(socket_path)).write_text(json.dumps({"clusterNetwork": "cbr0", "cniDir": str(cni_dir)}))
    assert _run(socket_path, _config(socket_path), "DEL") == (0, None)  # nothing cached: nothing to delete
    assert "deleting from the cache" in capsys.readouterr().err
    assert (cni_dir / "locks").is_dir()  # it took the sandbox lock the daemon takes


def test_del_without_a_daemon_or_its_config_fails_rather_than_claim_success(socket_path: str) -> None:
    code, printed = _run(socket_path, _config(socket_path), "DEL")
    assert code == 1
    assert printed["code"] == 7
    assert "clusterNetwork" in printed["msg"]


def test_snapshot_that_is_not_json_reads_as_none(socket_path: str) -> None:
    Path(shim.snapshot_path(socket_path)).write_text("{")
    assert shim.read_snapshot(socket_path) == {}
