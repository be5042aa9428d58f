"""The three API verbs thin mode needs (GET pod, GET NAD, PATCH pod status) over
`http.client` + `ssl`, without the generated `kubernetes` client; and the daemon's
per-ADD writes (the status PATCH and event POSTs, through `meta.k8s.Kube`).

An exec'd `netplex` pays ~350 ms to import `kubernetes` (its `CoreV1Api` imports every
model) for three requests; this costs a few ms. It reads the kubeconfig's current context
(JSON is tried first, `yaml` imported only for YAML): the server, a CA (data or file) or
insecure-skip-tls-verify, and a bearer token (inline or tokenFile) or a client
certificate and key (data or files); relative paths are relative to the kubeconfig. A
kubeconfig that needs more (exec or auth-provider plugins, basic auth, proxies) gives
None from `from_kubeconfig` and the caller uses `meta.k8s`. `in_cluster()` reads the pod's
service account. The daemon keeps `meta.k8s` for its lists and watches.

Returns meta.source models and raises meta.source errors, like `meta.k8s.Kube`, with the
same HTTP status mapping; kubeconfigs and tokens never appear in errors.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

from cni import invoke
from meta.model import NETWORK_STATUS_ANNOTATION
from meta.source import Forbidden, NetworkAttachment, NotFound, Pod, SourceError, Unavailable, encode_network_status

__all__ = ["LightKube", "from_kubeconfig", "in_cluster"]

NAD_PATH = "/apis/k8s.cni.cncf.io/v1/namespaces/{namespace}/network-attachment-definitions/{name}"
POD_PATH = "/api/v1/namespaces/{namespace}/pods/{name}"
EVENTS_PATH = "/api/v1/namespaces/{namespace}/events"
MERGE_PATCH = "application/merge-patch+json"
POOL_SIZE = 4  # idle keep-alive connections kept (the daemon's requests share them)
# How a kept-alive connection that the server closed while idle fails on reuse.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
TOKEN_REREAD = 60.0  # seconds between reads of a token file (client-go reads it each minute)
USER_AGENT = "netplex"
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
_UNSUPPORTED_USER_KEYS = ("exec", "auth-provider", "username", "password", "as", "as-groups", "impersonate")


class LightKube:
    """A meta.source.Source on a Kubernetes API server over keep-alive connections.

    Safe to share between threads (the daemon's requests and its event poster): each
    request takes an idle connection from a small pool, or opens one, and puts it back
    when the answer was read whole. A bearer token read from a file (a kubeconfig's
    tokenFile, the service account's rotating token) is read again once a minute."""

    def __init__(
        self, server: str, *, context: ssl.SSLContext | None, token: str = "", token_file: str = "",
        timeout: float,
    ) -> None:
        parsed = urllib.parse.urlsplit(server)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SourceError(f'API server "{server}"', "not an http(s) URL")
        self.server = server
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._prefix = parsed.path.rstrip("/")
        self._context = context
        self._token = token
        self._token_file = token_file
        self._token_read = time.monotonic() if token_file else 0.0
        self._timeout = timeout
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def get_pod(self, namespace: str, name: str) -> Pod:
        what = f'pod "{namespace}/{name}"'
        doc = self._request("GET", POD_PATH.format(namespace=_q(namespace), name=_q(name)), what)
        metadata = object_metadata(doc, what)
        return Pod(
            namespace=str(metadata.get("namespace", "")), name=str(metadata.get("name", "")),
            uid=str(metadata.get("uid", "")), annotations=object_annotations(metadata, what),
        )

    def get_attachment(self, namespace: str, name: str) -> NetworkAttachment:
        what = f'NetworkAttachmentDefinition "{namespace}/{name}"'
        doc = self._request("GET", NAD_PATH.format(namespace=_q(namespace), name=_q(name)), what)
        metadata = object_metadata(doc, what)
        spec = doc.get("spec") or {}
        conf = spec.get("config", "") if isinstance(spec, dict) else None
        if not isinstance(conf, str):
            raise SourceError(what, "spec.config is not a string")
        return NetworkAttachment(
            namespace=str(metadata.get("namespace", "")), name=str(metadata.get("name", "")), config=conf,
            annotations=object_annotations(metadata, what),
        )

    def set_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        """One merge patch of the pod's `status` subresource, its UID as a precondition
        (as `meta.k8s.Kube.set_network_status`): 409 means the pod was replaced."""
        what = f'pod "{pod.namespace}/{pod.name}"'
        metadata: dict[str, Any] = {"annotations": {NETWORK_STATUS_ANNOTATION: encode_network_status(status)}}
        if pod.uid:
            metadata["uid"] = pod.uid
        body = json.dumps({"metadata": metadata}).encode()
        path = POD_PATH.format(namespace=_q(pod.namespace), name=_q(pod.name)) + "/status"
        self._request("PATCH", path, what, body=body, conflict_is_gone=True)

    def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        """POST one core/v1 Event (meta.events builds it, from a thread of its own)."""
        self._request(
            "POST", EVENTS_PATH.format(namespace=_q(namespace)), f'event in "{namespace}"',
            body=json.dumps(event).encode(), content_type="application/json",
        )

    def _bearer(self) -> str:
        if self._token_file and time.monotonic() - self._token_read >= TOKEN_REREAD:
            with contextlib.suppress(OSError, SourceError):  # keep the last good token
                self._token = _read_text(self._token_file, "token file").strip()
            self._token_read = time.monotonic()
        return self._token

    def _take(self, *, fresh: bool = False) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle and not fresh:
                return self._idle.pop()
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._context)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def _request(self, method: str, path: str, what: str, *, body: bytes | None = None,
                 conflict_is_gone: bool = False, content_type: str = MERGE_PATCH) -> Any:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        token = self._bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = content_type
        timeout = invoke.remaining(self._timeout)  # bounded by the request's deadline too
        if timeout is not None and timeout <= 0:
            raise Unavailable(what, "the request's deadline (addTimeout) passed before the API call")
        conn = self._take()
        while True:
            reused = conn.sock is not None
            try:
                conn.timeout = timeout
                if reused:
                    conn.sock.settimeout(timeout)
                conn.request(method, self._prefix + path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                # A kept-alive connection the server (or a proxy) closed while it sat idle
                # fails before any answer: send once more on a new connection, as client-go
                # and urllib3 do. Anything else is the server being unreachable.
                if reused and isinstance(exc, _STALE):
                    conn = self._take(fresh=True)
                    continue
                raise Unavailable(what, f"cannot reach the API server {self.server}: {_describe(exc)}") from exc
        if response.will_close:
            conn.close()
        else:
            self._give_back(conn)
        status = response.status
        if status >= 300:
            raise _error(status, response.reason or "no reason", what, conflict_is_gone=conflict_is_gone)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise SourceError(what, "the API server's answer is not JSON") from exc


def from_kubeconfig(path: str, *, timeout: float) -> LightKube | None:
    """A client for the kubeconfig's current context, or None when it needs what only the
    full client does (then use `meta.k8s`). A missing file is `Unavailable`; a file that is
    not YAML, or names no usable context, is `SourceError`."""
    what = f'kubeconfig "{path}"'
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError as exc:
        raise Unavailable(what, "no such file") from exc
    except OSError as exc:
        raise SourceError(what, f"cannot load: {exc.strerror or type(exc).__name__}") from exc
    doc = _load(raw, what)
    base = os.path.dirname(os.path.abspath(path))
    try:
        contexts = {c["name"]: c.get("context") or {} for c in doc.get("contexts") or []}
        clusters = {c["name"]: c.get("cluster") or {} for c in doc.get("clusters") or []}
        users = {u["name"]: u.get("user") or {} for u in doc.get("users") or []}
        context = contexts[doc["current-context"]]
        cluster = clusters[context["cluster"]]
        user = users.get(context.get("user", ""), {}) if context.get("user") else {}
    except (KeyError, TypeError, AttributeError) as exc:
        raise SourceError(what, "cannot load: no usable current-context, cluster or user") from exc
    if not isinstance(cluster, dict) or not isinstance(user, dict) or not isinstance(cluster.get("server"), str):
        raise SourceError(what, "cannot load: the current context has no server")
    needs_full_client = any(user.get(key) for key in _UNSUPPORTED_USER_KEYS)
    if needs_full_client or cluster.get("proxy-url") or cluster.get("tls-server-name"):
        return None
    token, token_file = user.get("token") or "", ""
    if not token and user.get("tokenFile"):
        token_file = _path(base, user["tokenFile"])
        token = _read_text(token_file, what)
    context_ssl = None
    if cluster["server"].startswith("https:"):
        context_ssl = _tls(cluster, user, base, what)
    return LightKube(
        str(cluster["server"]), context=context_ssl, token=str(token).strip(), token_file=token_file, timeout=timeout
    )


def in_cluster(*, timeout: float) -> LightKube:
    """A client from the pod's service account (KUBERNETES_SERVICE_HOST/PORT)."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise SourceError("in-cluster config", "cannot load: KUBERNETES_SERVICE_HOST/PORT are not set")
    token_file = os.path.join(SERVICE_ACCOUNT, "token")  # rotated by the kubelet: read again
    token = _read_text(token_file, "in-cluster config")
    context = ssl.create_default_context(cafile=os.path.join(SERVICE_ACCOUNT, "ca.crt"))
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return LightKube(server, context=context, token=token.strip(), token_file=token_file, timeout=timeout)


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        import yaml  # only for a kubeconfig that is not JSON

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            doc = yaml.load(raw, Loader=loader)  # a safe loader (C if built)
        except yaml.MarkedYAMLError as exc:  # its str() quotes the file: it may hold a token
            line = exc.problem_mark.line + 1 if exc.problem_mark else 0
            raise SourceError(what, f"cannot load: invalid YAML at line {line}") from exc
        except yaml.YAMLError as exc:
            raise SourceError(what, f"cannot load: {type(exc).__name__}") from exc
    if not isinstance(doc, dict):
        raise SourceError(what, "cannot load: not a kubeconfig")
    return doc


def _tls(cluster: dict[str, Any], user: dict[str, Any], base: str, what: str) -> ssl.SSLContext:
    try:
        if cluster.get("insecure-skip-tls-verify"):
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            cadata = base64.b64decode(cluster["certificate-authority-data"]).decode()
            context = ssl.create_default_context(cadata=cadata)
        elif cluster.get("certificate-authority"):
            context = ssl.create_default_context(cafile=_path(base, cluster["certificate-authority"]))
        else:
            context = ssl.create_default_context()
        cert, key = user.get("client-certificate-data"), user.get("client-key-data")
        if cert and key:
            with _pem_files(base64.b64decode(cert), base64.b64decode(key)) as (cert_file, key_file):
                context.load_cert_chain(cert_file, key_file)
        elif user.get("client-certificate") and user.get("client-key"):
            context.load_cert_chain(_path(base, user["client-certificate"]), _path(base, user["client-key"]))
    except (OSError, ValueError, ssl.SSLError) as exc:  # binascii.Error is a ValueError
        raise SourceError(what, f"cannot load: TLS material: {type(exc).__name__}") from exc
    return context


@contextlib.contextmanager
def _pem_files(cert: bytes, key: bytes) -> Iterator[tuple[str, str]]:
    """The client certificate and key as files for `load_cert_chain` (it reads files only):
    private (0600) in a fresh directory, removed as soon as they are loaded."""
    import tempfile  # inline client certificates only: not on every call's path

    with tempfile.TemporaryDirectory(prefix="netplex-tls-") as directory:
        paths = []
        for name, data in (("cert.pem", cert), ("key.pem", key)):
            path = os.path.join(directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            paths.append(path)
        yield paths[0], paths[1]


def _path(base: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(base, path)


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise SourceError(what, f"cannot read {path!r}: {exc.strerror or type(exc).__name__}") from exc


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _error(status: int, reason: str, what: str, *, conflict_is_gone: bool) -> SourceError:
    """The API's HTTP status as our error types, as meta.k8s maps them."""
    if status == 409 and conflict_is_gone:
        return NotFound(what, "replaced by another pod of the same name (its uid changed)")
    if status == 404:
        return NotFound(what, "not found")
    if status in (401, 403):
        return Forbidden(what, f"the API server refused access (HTTP {status}): check netplex's RBAC")
    if status == 429 or status >= 500:
        return Unavailable(what, f"the API server cannot answer now (HTTP {status} {reason})")
    return SourceError(what, f"the API server answered HTTP {status} {reason}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        return exc.strerror or os.strerror(exc.errno)
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or type(exc).__name__}"
    return type(exc).__name__


def object_metadata(doc: Any, what: str) -> dict[str, Any]:
    metadata = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(metadata, dict):
        raise SourceError(what, "the API server's object has no metadata")
    return metadata


def object_annotations(metadata: dict[str, Any], what: str) -> dict[str, str]:
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise SourceError(what, "metadata.annotations is not a map of strings")
    return dict(annotations)
