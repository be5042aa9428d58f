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
