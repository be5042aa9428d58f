"""A small Kubernetes API client on the standard library (http.client, ssl), for the
cluster IPAM: get, list, create, replace, delete of JSON objects by resource path.

Why not `kubernetes`: the IPAM is also exec'd per CNI call (`netplex-ipam`), where the
official client's import alone costs ~200 ms; and only meta.k8s may import it. This
client reads a kubeconfig's current context (server, certificate-authority[-data],
client-certificate[-data]/client-key[-data], token, tokenFile,
insecure-skip-tls-verify) or the in-cluster service account. Exec and auth-provider
credentials are not supported (error naming the key).

Every call is one request bounded by `timeout`; nothing is retried here (the allocator
decides what a 409 means). Failures are `ApiError`s by status: `NotFound` (404),
`Conflict` (409: AlreadyExists on create, a stale resourceVersion on update),
`Unavailable` (5xx, 429, connection failures), `ApiError` otherwise. `counts` records
requests by method, so the benchmark can report writes per ADD. Tokens and keys are
never logged or put into errors. Must not import meta or kubernetes."""

from __future__ import annotations

import base64
import collections
import dataclasses
import http.client
import json
import os
import ssl
import tempfile
import threading
import urllib.parse
from typing import Any

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TIMEOUT = 10.0
MAX_BODY = 64 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class Unavailable(ApiError):
    pass


class ConfigError(ValueError):
    """The kubeconfig cannot be used; the message names the key (never its value)."""


@dataclasses.dataclass(frozen=True)
class Resource:
    """A resource type: `group` "" is the core API (/api/v1)."""

    group: str
    version: str
    plural: str
    namespaced: bool

    def path(self, *, namespace: str = "", name: str = "", subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{urllib.parse.quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{urllib.parse.quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


class Client:
    """One API server; thread-safe (a connection per request)."""

    def __init__(
        self,
        server: str,
        *,
        token: str = "",
        token_file: str = "",
        context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        parsed = urllib.parse.urlsplit(server)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"cluster.server: not an http(s) URL: {server[:80]!r}")
        self.server = f"{parsed.scheme}://{parsed.netloc}"
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port or (443 if self._https else 80)
        self._base = parsed.path.rstrip("/")
        self._token = token
        self._token_file = token_file
        self._context = context
        self.timeout = timeout
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    # -- constructors ----------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> Client:
        try:
            with open(path, "rb") as handle:
                raw = handle.read(4 * 1024 * 1024)
        except OSError as exc:
            raise ConfigError(f"kubeconfig {path!r}: cannot read: {exc.strerror}") from exc
        try:
            doc = json.loads(raw)  # what `netplex install` writes: no yaml import (~15 ms a call)
        except ValueError:
            import yaml  # only for a kubeconfig that is not JSON

            try:
                doc = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ConfigError(f"kubeconfig {path!r}: not valid YAML") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {path!r}: not a YAML mapping")
        base = os.path.dirname(os.path.abspath(path))
        context = _named(doc, "contexts", str(doc.get("current-context", "")), "context", path)
        cluster = _named(doc, "clusters", str(context.get("cluster", "")), "cluster", path)
        user = _named(doc, "users", str(context.get("user", "")), "user", path, optional=True)
        if "exec" in user or "auth-provider" in user:
            raise ConfigError(f"kubeconfig {path!r}: user.exec / user.auth-provider credentials are not supported")
        server = str(cluster.get("server", ""))
        ssl_context = None
        if server.startswith("https"):
            ssl_context = _ssl_context(cluster, user, base)
        return cls(
            server, token=str(user.get("token", "") or ""), token_file=_path(user.get("tokenFile"), base),
            context=ssl_context, timeout=timeout,
        )

    @classmethod
    def in_cluster(cls, *, timeout: float = DEFAULT_TIMEOUT) -> Client:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise ConfigError("in-cluster config: KUBERNETES_SERVICE_HOST is not set")
        context = ssl.create_default_context(cafile=os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt"))
        host = f"[{host}]" if ":" in host else host
        return cls(
            f"https://{host}:{port}", token_file=os.path.join(SERVICE_ACCOUNT_DIR, "token"),
            context=context, timeout=timeout,
        )

    # -- verbs -----------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, *, namespace: str = "") -> dict[str, Any]:
        return self.request("GET", resource.path(namespace=namespace, name=name))

    def list(
        self, resource: Resource, *, namespace: str = "", label_selector: str = "", field_selector: str = "",
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector, "fieldSelector": field_selector, "limit": str(limit or "")}
        doc = self.request("GET", resource.path(namespace=namespace), query=query)
        items = doc.get("items")
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    def create(self, resource: Resource, obj: dict[str, Any], *, namespace: str = "") -> dict[str, Any]:
        return self.request("POST", resource.path(namespace=namespace), body=obj)

    def replace(
        self, resource: Resource, obj: dict[str, Any], *, namespace: str = "", subresource: str = ""
    ) -> dict[str, Any]:
        """PUT: with metadata.resourceVersion set, a stale object is `Conflict`."""
        name = str(obj.get("metadata", {}).get("name", ""))
        return self.request("PUT", resource.path(namespace=namespace, name=name, subresource=subresource), body=obj)

    def delete(
        self, resource: Resource, name: str, *, namespace: str = "", resource_version: str = "", uid: str = ""
    ) -> None:
        """DELETE with preconditions (409 when the object changed since it was read)."""
        preconditions = {key: value for key, value in (("resourceVersion", resource_version), ("uid", uid)) if value}
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": preconditions} if preconditions else None
        self.request("DELETE", resource.path(namespace=namespace, name=name), body=body)

    def request(
        self, method: str, path: str, *, body: Any = None, query: dict[str, str] | None = None
    ) -> dict[str, Any]:
        with self._lock:
            self.counts[method] += 1
        target = self._base + path
        pairs = {key: value for key, value in (query or {}).items() if value}
        if pairs:
            target += "?" + urllib.parse.urlencode(pairs)
        headers = {"Accept": "application/json", "User-Agent": "netplex-ipam"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        token = self._bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        connection: http.client.HTTPConnection
        if self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self._context
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            connection.request(method, target, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read(MAX_BODY)
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                reason = "timed out"
            raise Unavailable(0, f"cannot reach the API server {self.server}: {reason}") from exc
        finally:
            connection.close()
        try:
            doc = json.loads(raw) if raw.strip() else {}
        except ValueError:
            doc = {}
        if status >= 400:
            message = str(doc.get("message", "")) if isinstance(doc, dict) else ""
            message = f"HTTP {status} for {method} {path}" + (f": {message[:300]}" if message else "")
            raise _error(status, message)
        if not isinstance(doc, dict):
            raise ApiError(status, f"{method} {path}: the answer is not a JSON object")
        return doc

    def _bearer(self) -> str:
        if self._token_file:
            try:
                with open(self._token_file, encoding="utf-8") as handle:
                    return handle.read().strip()
            except OSError:
                return self._token
        return self._token


def _error(status: int, message: str) -> ApiError:
    if status == 404:
        return NotFound(status, message)
    if status == 409:
        return Conflict(status, message)
    if status == 429 or status >= 500:
        return Unavailable(status, message)
    return ApiError(status, message)


def _named(
    doc: dict[str, Any], section: str, name: str, key: str, path: str, *, optional: bool = False
) -> dict[str, Any]:
    entries = doc.get(section) or []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name and isinstance(entry.get(key), dict):
            found: dict[str, Any] = entry[key]
            return found
    if optional:
        return {}
    raise ConfigError(f"kubeconfig {path!r}: {section}: no entry named {name!r}")


def _path(value: Any, base: str) -> str:
    if not isinstance(value, str) or not value:
        return ""
    return value if os.path.isabs(value) else os.path.join(base, value)


def _ssl_context(cluster: dict[str, Any], user: dict[str, Any], base: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    elif cluster.get("certificate-authority"):
        context.load_verify_locations(cafile=_path(cluster["certificate-authority"], base))
    made: list[str] = []
    try:
        cert, key = _material(user, "client-certificate", base, made), _material(user, "client-key", base, made)
        if cert and key:
            context.load_cert_chain(cert, key)
    finally:
        for temporary in made:
            os.unlink(temporary)
    return context


def _material(user: dict[str, Any], key: str, base: str, made: list[str]) -> str:
    """A file holding the PEM of `key` (its -data written to a private temporary file,
    listed in `made` for removal once loaded)."""
    data = user.get(f"{key}-data")
    if data:
        handle = tempfile.NamedTemporaryFile(prefix="netplex-ipam-", suffix=".pem", delete=False)  # noqa: SIM115
        with handle:
            os.chmod(handle.name, 0o600)
            made.append(handle.name)
            handle.write(base64.b64decode(data))
        return handle.name
    return _path(user.get(key), base)
