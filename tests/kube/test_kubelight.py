"""meta.kubelight, thin mode's API client without `kubernetes`: the three verbs against
the API double over real HTTP (and HTTPS with a real certificate), the same models and
errors as meta.k8s, kubeconfig credentials (token, tokenFile, client certificate data or
files, CA data or file), and a fallback (None) for what only the full client does."""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meta import k8s, kubelight
from meta.model import NETWORK_STATUS_ANNOTATION
from meta.source import Forbidden, NotFound, Pod, SourceError, Unavailable
from tests.kube.apidouble import ApiDouble


def _kubeconfig(tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> str:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": cluster}], "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(doc))
    return str(path)


def test_the_three_verbs_give_what_the_full_client_gives(kubeconfig: str, api_double: ApiDouble) -> None:
    api_double.add_pod("default", "web", annotations={"a": "b"}, uid="u1")
    api_double.add_nad("default", "blue", config='{"type": "bridge"}')
    light = kubelight.from_kubeconfig(kubeconfig, timeout=5)
    assert light is not None
    full = k8s.Kube.from_kubeconfig(kubeconfig, timeout=5)
    try:
        assert light.get_pod("default", "web") == full.get_pod("default", "web")
        assert light.get_attachment("default", "blue") == full.get_attachment("default", "blue")
        light.set_network_status(Pod("default", "web", uid="u1"), [{"name": "x", "interface": "eth0"}])
    finally:
        full.close()
        light.close()
    annotations = api_double.pod("default", "web")["metadata"]["annotations"]
    assert json.loads(annotations[NETWORK_STATUS_ANNOTATION]) == [{"name": "x", "interface": "eth0"}]
    patch = [r for r in api_double.requests if r.method == "PATCH"][-1]
    assert patch.path.endswith("/pods/web/status") and patch.content_type == "application/merge-patch+json"
    assert patch.json()["metadata"]["uid"] == "u1"


def test_errors_map_as_the_full_clients(kubeconfig: str, api_double: ApiDouble) -> None:
    light = kubelight.from_kubeconfig(kubeconfig, timeout=5)
    assert light is not None
    with pytest.raises(NotFound, match='pod "default/nowhere": not found'):
        light.get_pod("default", "nowhere")
    api_double.add_pod("default", "web", uid="u1")
    with pytest.raises(NotFound, match="replaced"):
        light.set_network_status(Pod("default", "web", uid="other"), [])
    api_double.fail_next(403)
    with pytest.raises(Forbidden):
        light.get_pod("default", "web")
    api_double.fail_next(503)
    with pytest.raises(Unavailable, match="HTTP 503"):
        light.get_pod("default", "web")
    api_double.stop()
    with pytest.raises(Unavailable, match="cannot reach the API server"):
        light.get_pod("default", "web")


def test_a_token_or_token_file_is_sent_as_a_bearer(tmp_path: Path, api_double: ApiDouble) -> None:
    api_double.add_pod("default", "web")
    (tmp_path / "token").write_text("from-a-file\n")
    for user, expected in [({"token": "inline"}, "Bearer inline"), ({"tokenFile": "token"}, "Bearer from-a-file")]:
        light = kubelight.from_kubeconfig(_kubeconfig(tmp_path, {"server": api_double.url}, user), timeout=5)
        assert light is not None
        light.get_pod("default", "web")
        light.close()
        assert api_double.requests[-1].headers.get("Authorization") == expected


@pytest.mark.parametrize("user", [{"exec": {"command": "aws"}}, {"auth-provider": {"name": "gcp"}},
                                  {"username": "a", "password": "b"}])
def test_what_only_the_full_client_does_falls_back_to_it(tmp_path: Path, user: dict[str, Any]) -> None:
    assert kubelight.from_kubeconfig(_kubeconfig(tmp_path, {"server": "https://k:6443"}, user), timeout=5) is None


def test_a_missing_or_broken_kubeconfig_is_named_without_its_content(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="no such file"):
        kubelight.from_kubeconfig(str(tmp_path / "none"), timeout=5)
    path = tmp_path / "broken"
    path.write_text("users:\n- name: u\n  user: {token: s3cr3t\n")
    with pytest.raises(SourceError, match="invalid YAML at line") as caught:
        kubelight.from_kubeconfig(str(path), timeout=5)
    assert "s3cr3t" not in str(caught.value)
    path.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(SourceError, match="current-context"):
        kubelight.from_kubeconfig(str(path), timeout=5)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path, Path, Path]]:
    """An HTTPS server asking for a client certificate: (url, CA = its cert, client cert, key)."""
    for name, cn in (("server", "localhost"), ("client", "netplex")):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={cn}",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", str(tmp_path / f"{name}.key"), "-out", str(tmp_path / f"{name}.crt")],
            check=True, capture_output=True,
        )
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            peer = self.connection.getpeercert() or {}
            seen.append(dict(x[0] for x in peer.get("subject", ()))["commonName"])
            body = json.dumps({"metadata": {"namespace": "default", "name": "web", "uid": "u9"}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(tmp_path / "client.crt")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", tmp_path / "server.crt", tmp_path / "client.crt", \
            tmp_path / "client.key"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)
    assert seen and set(seen) == {"netplex"}


def test_client_certificates_and_cas_as_data_or_files_over_real_tls(
    tmp_path: Path, tls_server: tuple[str, Path, Path, Path]
) -> None:
    url, ca, cert, key = tls_server

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    variants = [
        ({"server": url, "certificate-authority-data": b64(ca)},
         {"client-certificate-data": b64(cert), "client-key-data": b64(key)}),
        ({"server": url, "certificate-authority": str(ca)},
         {"client-certificate": str(cert), "client-key": str(key)}),
    ]
    for cluster, user in variants:
        light = kubelight.from_kubeconfig(_kubeconfig(tmp_path, cluster, user), timeout=10)
        assert light is not None
        assert light.get_pod("default", "web").uid == "u9"
        light.close()
    wrong_ca = {"server": url, "certificate-authority": str(cert)}  # not the server's issuer
    light = kubelight.from_kubeconfig(_kubeconfig(tmp_path, wrong_ca, variants[1][1]), timeout=10)
    assert light is not None
    with pytest.raises(Unavailable):
        light.get_pod("default", "web")


def test_thin_mode_never_imports_kubernetes_with_a_plain_kubeconfig(kubeconfig: str) -> None:
    code = (
        "import sys\nfrom meta import kubelight\n"
        f"kubelight.from_kubeconfig({kubeconfig!r}, timeout=1)\n"
        "print('kubernetes' in sys.modules, 'yaml' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]  # the fixture's kubeconfig is YAML


@pytest.fixture
def keepalive_server() -> Iterator[tuple[str, list[tuple[int, str, str]], list[bool]]]:
    """An HTTP/1.1 keep-alive server (as kube-apiserver is) recording, per request, the
    client's port (one per connection), the method and the bearer."""
    seen: list[tuple[int, str, str]] = []
    hang_up: list[bool] = []  # set: close each connection after its answer, without saying so

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # an idle kept-alive connection ends the handler at the latest then

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen.append((self.client_address[1], self.command, self.headers.get("Authorization", "")))
            body = json.dumps({"metadata": {"namespace": "default", "name": "web", "uid": "u1"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if hang_up:
                self.close_connection = True  # as an idle timeout on the server's side would

        def do_GET(self) -> None:
            self._answer()

        def do_PATCH(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen, hang_up
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)


def test_requests_reuse_kept_alive_connections_from_any_thread(
    tmp_path: Path, keepalive_server: tuple[str, list[tuple[int, str, str]], list[bool]]
) -> None:
    url, seen, _ = keepalive_server
    light = kubelight.from_kubeconfig(_kubeconfig(tmp_path, {"server": url}, {"token": "t"}), timeout=5)
    assert light is not None
    pod = Pod("default", "web", uid="u1")
    try:
        light.set_network_status(pod, [])
        light.create_event("default", {"reason": "AddedInterface"})
        # The daemon's request threads and its event poster share the client.
        workers = [threading.Thread(target=light.set_network_status, args=(pod, [])) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        light.get_pod("default", "web")
    finally:
        light.close()
    assert [method for _, method, _ in seen].count("PATCH") == 5 and len(seen) == 7
    ports = [port for port, _, _ in seen]
    assert ports[0] == ports[1]  # one connection, kept alive, for consecutive requests
    assert len(set(ports)) <= 1 + kubelight.POOL_SIZE  # concurrent ones take a pooled connection or a new one


def test_a_token_file_is_read_again_once_rotated(
    tmp_path: Path, keepalive_server: tuple[str, list[tuple[int, str, str]], list[bool]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, seen, _ = keepalive_server
    token = tmp_path / "token"
    token.write_text("first\n")
    light = kubelight.from_kubeconfig(_kubeconfig(tmp_path, {"server": url}, {"tokenFile": "token"}), timeout=5)
    assert light is not None
    try:
        light.get_pod("default", "web")
        token.write_text("second\n")  # the kubelet rotates a projected service-account token
        light.get_pod("default", "web")  # within the re-read interval: the token read before
        monkeypatch.setattr(kubelight, "TOKEN_REREAD", 0.0)
        light.get_pod("default", "web")
        token.unlink()  # gone for a moment: the last good token is kept
        light.get_pod("default", "web")
    finally:
        light.close()
    assert [bearer for _, _, bearer in seen] == ["Bearer first", "Bearer first", "Bearer second", "Bearer second"]


def test_a_kept_alive_connection_the_server_closed_is_replaced_not_an_error(
    tmp_path: Path, keepalive_server: tuple[str, list[tuple[int, str, str]], list[bool]]
) -> None:
    url, seen, hang_up = keepalive_server
    light = kubelight.from_kubeconfig(_kubeconfig(tmp_path, {"server": url}, {}), timeout=5)
    assert light is not None
    hang_up.append(True)
    try:
        for _ in range(3):  # each reuses a connection the server has closed since
            light.set_network_status(Pod("default", "web", uid="u1"), [])
    finally:
        light.close()
    ports = [port for port, _, _ in seen]
    assert len(ports) == 3 and len(set(ports)) == 3  # each sent once, each on a new connection


def test_the_full_clients_writes_go_over_the_light_one_when_it_can(
    kubeconfig: str, tmp_path: Path, api_double: ApiDouble
) -> None:
    api_double.add_pod("default", "web", uid="u1")
    verbs: list[str] = []
    full = k8s.Kube.from_kubeconfig(kubeconfig, timeout=5, on_request=verbs.append)
    try:
        assert isinstance(full._writer, kubelight.LightKube)
        full.set_network_status(Pod("default", "web", uid="u1"), [{"name": "x", "interface": "eth0"}])
        full.create_event("default", {"metadata": {"generateName": "web."}, "reason": "AddedInterface",
                                      "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web"}})
        with pytest.raises(NotFound, match="replaced"):
            full.set_network_status(Pod("default", "web", uid="other"), [])
    finally:
        full.close()
    assert verbs == ["patch", "create", "patch"]
    annotations = api_double.pod("default", "web")["metadata"]["annotations"]
    assert json.loads(annotations[NETWORK_STATUS_ANNOTATION]) == [{"name": "x", "interface": "eth0"}]
    assert [r.method for r in api_double.requests][-3:] == ["PATCH", "POST", "PATCH"]
    exec_user = {"exec": {"command": "true", "apiVersion": "client.authentication.k8s.io/v1"}}
    fallback = k8s.Kube.from_kubeconfig(_kubeconfig(tmp_path, {"server": api_double.url}, exec_user), timeout=5)
    try:
        assert fallback._writer is None  # what the stdlib client cannot do stays on the full one
    finally:
        fallback.close()
