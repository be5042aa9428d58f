"""A Kubernetes API server double for the kube lane: real HTTP on 127.0.0.1, an in-memory
store of pods and NetworkAttachmentDefinitions, and a record of every request.

It implements the endpoints netplex uses, in the shapes the real server sends (kind,
apiVersion, metadata with uid and resourceVersion, `Status` objects for errors):

  GET    /api/v1/namespaces/{ns}/pods/{name}[/status]
  PATCH  /api/v1/namespaces/{ns}/pods/{name}[/status]   merge and strategic-merge patches
  GET    /api/v1/pods, /api/v1/namespaces/{ns}/pods      list (fieldSelector, labelSelector)
  GET    /apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions[/{name}]
  GET    /apis/k8s.cni.cncf.io/v1/network-attachment-definitions
  GET    /api/v1/namespaces[/{name}]                        (network policy's namespaceSelector)
  GET    /apis/k8s.cni.cncf.io/{v1beta1,v1beta2}[/namespaces/{ns}]/multi-networkpolicies[/{name}]
  ...?watch=1 on every list: JSON lines of {"type", "object"} from `resourceVersion`
  POST   /api/v1/namespaces/{ns}/events                 core/v1 Events, kept in `events_posted`

It speaks HTTP/1.1 with keep-alive, as kube-apiserver does (a client's connections are
reused; `Request.connection` tells them apart; watches are chunked and end their
connection). `stop()` closes the idle connections and ends each busy one after its
answer, so nothing stays open: the next request is refused, as with an API server that
went away. Tests inject
failures (`fail_next`, `delay_next`) and check `requests`. An exception inside the double
lands in `errors`; the fixture fails the test on any."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.kube.apistore import GenericStore

PODS = "pods"
NADS = "network-attachment-definitions"
NAD_API_VERSION = "k8s.cni.cncf.io/v1"
NAMESPACES = "namespaces"  # cluster-scoped: stored under namespace ""
POLICIES = "multi-networkpolicies"
POLICY_API_VERSION = "k8s.cni.cncf.io/v1beta1"
_LIST_KINDS = {NAMESPACES: ("NamespaceList", "v1"), POLICIES: ("MultiNetworkPolicyList", POLICY_API_VERSION)}
_POLICY_PREFIX = r"/apis/k8s\.cni\.cncf\.io/(?:v1beta1|v1beta2)"
CREATED = "2024-01-01T00:00:00Z"
_PATCH_TYPES = {"application/merge-patch+json", "application/strategic-merge-patch+json"}
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}
_NAD_PREFIX = r"/apis/k8s\.cni\.cncf\.io/v1"
EVENTS_PATH = re.compile(r"/api/v1/namespaces/([^/]+)/events")
_ROUTES = [
    (re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)(/status)?"), PODS, "object"),
    (re.compile(r"/api/v1/namespaces/([^/]+)/pods"), PODS, "list"),
    (re.compile(r"/api/v1/pods()"), PODS, "list"),
    (re.compile(_NAD_PREFIX + r"/namespaces/([^/]+)/network-attachment-definitions/([^/]+)"), NADS, "object"),
    (re.compile(_NAD_PREFIX + r"/namespaces/([^/]+)/network-attachment-definitions"), NADS, "list"),
    (re.compile(_NAD_PREFIX + r"/network-attachment-definitions()"), NADS, "list"),
    (re.compile(r"/api/v1/namespaces/()([^/]+)"), NAMESPACES, "object"),
    (re.compile(r"/api/v1/namespaces()"), NAMESPACES, "list"),
    (re.compile(_POLICY_PREFIX + r"/namespaces/([^/]+)/multi-networkpolicies/([^/]+)"), POLICIES, "object"),
    (re.compile(_POLICY_PREFIX + r"/namespaces/([^/]+)/multi-networkpolicies"), POLICIES, "list"),
    (re.compile(_POLICY_PREFIX + r"/multi-networkpolicies()"), POLICIES, "list"),
]


@dataclasses.dataclass(frozen=True)
class Request:
    """One request as the double received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    headers: dict[str, str]
    body: bytes
    seq: int = 0  # server-side arrival order (1, 2, ...): order tests assert on, not client clocks
    connection: int = 0  # the client's port: requests on one kept-alive connection share it

    def json(self) -> Any:
        return json.loads(self.body)


@dataclasses.dataclass
class _Fault:
    status: int  # 0: no error answer, only the delay (then the request is served)
    delay: float
    method: str | None
    path: str | None
    times: int


@dataclasses.dataclass(frozen=True)
class _Event:
    resource_version: int
    resource: str
    type: str
    obj: dict[str, Any]


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ApiDouble(GenericStore):
    """The double; `start()` it, seed it, point a client at `url`, `close()` it.
    `register_resource(group, version, plural, namespaced=...)` serves any other kind
    (tests/kube/apistore.py)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {PODS: {}, NADS: {}, NAMESPACES: {},
                                                                            POLICIES: {}}
        self._events: list[_Event] = []
        self._resource_version = 1000
        self._oldest_watchable = 0
        self._requests: list[Request] = []
        self._seq = 0
        self._faults: list[_Fault] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.errors: list[BaseException] = []
        self.events_posted: list[dict[str, Any]] = []
        self._generic_init()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again, on the same port after a `stop()`)."""
        if self._server is not None:
            return
        self._stopping.clear()
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.double = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="api-double", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: connections are refused until `start()`. Open watches end."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        server.shutdown()
        server.close_idle()
        server.server_close()  # joins the handler threads
        thread.join()
        self._server = self._thread = None

    close = stop

    def __enter__(self) -> ApiDouble:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- seeding and inspection --------------------------------------------------------

    def add_pod(
        self,
        namespace: str,
        name: str,
        *,
        annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        uid: str | None = None,
        node_name: str = "node-1",
    ) -> dict[str, Any]:
        obj = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": _metadata(namespace, name, uid=uid, annotations=annotations, labels=labels),
            "spec": {"nodeName": node_name, "containers": [{"name": "main", "image": "pause"}]},
            "status": {"phase": "Pending"},
        }
        return self._put(PODS, obj, "ADDED")

    def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str | None]) -> dict[str, Any]:
        """Set (None: remove) annotations of a stored pod, as `kubectl annotate` does: one
        MODIFIED event."""
        with self._cond:
            obj = copy.deepcopy(self._objects[PODS][(namespace, name)])
        current = obj["metadata"].setdefault("annotations", {})
        for key, value in annotations.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        return self._put(PODS, obj, "MODIFIED")

    def delete_pod(self, namespace: str, name: str) -> None:
        self._delete(PODS, namespace, name)

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        """A copy of the stored pod (KeyError when there is none)."""
        with self._cond:
            return copy.deepcopy(self._objects[PODS][(namespace, name)])

    def add_nad(
        self, namespace: str, name: str, *, config: str = "", annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        obj = {
            "kind": "NetworkAttachmentDefinition",
            "apiVersion": NAD_API_VERSION,
            "metadata": _metadata(namespace, name, annotations=annotations),
            "spec": {"config": config} if config else {},
        }
        return self._put(NADS, obj, "ADDED")

    def update_nad(self, namespace: str, name: str, *, config: str) -> dict[str, Any]:
        with self._cond:
            obj = copy.deepcopy(self._objects[NADS][(namespace, name)])
        obj["spec"] = {"config": config} if config else {}
        return self._put(NADS, obj, "MODIFIED")

    def delete_nad(self, namespace: str, name: str) -> None:
        self._delete(NADS, namespace, name)

    def nad(self, namespace: str, name: str) -> dict[str, Any]:
        with self._cond:
            return copy.deepcopy(self._objects[NADS][(namespace, name)])

    # -- network policy: namespaces, MultiNetworkPolicies, pod labels -------------------

    def add_namespace(self, name: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
        labels = {"kubernetes.io/metadata.name": name, **(labels or {})}  # as the real server adds
        obj = {"kind": "Namespace", "apiVersion": "v1", "metadata": _metadata("", name, labels=labels)}
        return self._put(NAMESPACES, obj, "ADDED")

    def add_policy(
        self, namespace: str, name: str, spec: dict[str, Any], *, policy_for: str
    ) -> dict[str, Any]:
        """A MultiNetworkPolicy with `k8s.v1.cni.cncf.io/policy-for: <policy_for>`."""
        obj = {
            "kind": "MultiNetworkPolicy", "apiVersion": POLICY_API_VERSION,
            "metadata": _metadata(namespace, name, annotations={"k8s.v1.cni.cncf.io/policy-for": policy_for}),
            "spec": copy.deepcopy(spec),
        }
        return self._put(POLICIES, obj, "ADDED")

    def update_policy(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            obj = copy.deepcopy(self._objects[POLICIES][(namespace, name)])
        obj["spec"] = copy.deepcopy(spec)
        return self._put(POLICIES, obj, "MODIFIED")

    def delete_policy(self, namespace: str, name: str) -> None:
        self._delete(POLICIES, namespace, name)

    def set_pod_labels(self, namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
        with self._cond:
            obj = copy.deepcopy(self._objects[PODS][(namespace, name)])
        obj["metadata"]["labels"] = dict(labels)
        return self._put(PODS, obj, "MODIFIED")

    def compact(self) -> None:
        """Forget the event history: a watch from an older resourceVersion gets 410 Gone."""
        with self._cond:
            self._oldest_watchable = self._resource_version
            self._events.clear()

    @property
    def requests(self) -> list[Request]:
        with self._cond:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[Request]:
        """The requests with this method and exactly this path."""
        return [r for r in self.requests if r.method == method and r.path == path]

    def clear_requests(self) -> None:
        with self._cond:
            self._requests.clear()

    # -- fault injection ---------------------------------------------------------------

    def fail_next(
        self, status: int = 500, *, method: str | None = None, path: str | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` matching requests (method, path substring) with `status`."""
        with self._cond:
            self._faults.append(_Fault(status, 0.0, method, path, times))

    def delay_next(self, seconds: float, *, method: str | None = None, path: str | None = None, times: int = 1) -> None:
        """Hold the next matching requests for `seconds` before serving them (a slow server);
        `stop()` cuts the wait short and drops them unanswered."""
        with self._cond:
            self._faults.append(_Fault(0, seconds, method, path, times))

    # -- the server side ---------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        split = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            method=handler.command,
            path=split.path,
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            content_type=handler.headers.get_content_type() if "Content-Type" in handler.headers else "",
            headers=dict(handler.headers.items()),
            body=handler.rfile.read(length) if length else b"",
            connection=int(handler.client_address[1]),
        )
        with self._cond:
            self._seq += 1
            request = dataclasses.replace(request, seq=self._seq)
            self._requests.append(request)
            fault = self._take_fault(request)
        if fault is not None and fault.delay and self._stopping.wait(fault.delay):
            handler.close_connection = True
            return  # stopped while holding the request: drop it unanswered (and hang up)
        if fault is not None and fault.status:
            _send(handler, fault.status, _status_doc(fault.status, "injected failure"))
            return
        try:
            self._route(handler, request)
        except _ApiError as exc:
            _send(handler, exc.status, _status_doc(exc.status, exc.message))

    def _take_fault(self, request: Request) -> _Fault | None:
        for fault in self._faults:
            if (fault.method is None or fault.method == request.method) and (
                fault.path is None or fault.path in request.path
            ):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _route(self, handler: _Handler, request: Request) -> None:
        if request.method == "POST" and (event_path := EVENTS_PATH.fullmatch(request.path)) is not None:
            _send(handler, 201, self._create_event(request, event_path.group(1)))
            return
        for pattern, resource, shape in _ROUTES:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            groups = match.groups()
            if shape == "object":
                namespace, name = groups[0], groups[1]
                subresource = groups[2] if len(groups) > 2 else None
                if request.method == "GET":
                    _send(handler, 200, self._get(resource, namespace, name))
                elif request.method == "PATCH" and resource == PODS:
                    _send(handler, 200, self._patch(request, namespace, name, status=bool(subresource)))
                else:
                    raise _ApiError(405, f"method {request.method} is not supported by the API double here")
                return
            if request.method != "GET":
                raise _ApiError(405, f"method {request.method} is not supported by the API double here")
            namespace = groups[0] or None
            selector = _Selector(request.query)
            if request.query.get("watch", [""])[0] in ("1", "true"):
                self._watch(handler, request, resource=resource, namespace=namespace, selector=selector)
            else:
                _send(handler, 200, self._list(resource, namespace, selector))
            return
        if self._generic_route(handler, request):
            return
        raise _ApiError(404, "the server could not find the requested resource")

    def _create_event(self, request: Request, namespace: str) -> dict[str, Any]:
        event = request.json()
        if not isinstance(event, dict) or event.get("metadata", {}).get("namespace", namespace) != namespace:
            raise _ApiError(400, "the event's namespace does not match the request's")
        with self._cond:
            self.events_posted.append(event)
            self._cond.notify_all()
        return {"kind": "Event", "apiVersion": "v1", **event}

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The events posted, once there are at least `count` (or at `timeout`)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.events_posted) >= count, timeout)
            return list(self.events_posted)

    def _get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        with self._cond:
            obj = self._objects[resource].get((namespace, name))
            if obj is None:
                raise _ApiError(404, f'{_qualified(resource)} "{name}" not found')
            return copy.deepcopy(obj)

    def _list(self, resource: str, namespace: str | None, selector: _Selector) -> dict[str, Any]:
        with self._cond:
            items = [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self._objects[resource].items())
                if (namespace is None or ns == namespace) and selector.matches(obj)
            ]
            version = str(self._resource_version)
        if resource == PODS:
            kind, api_version = "PodList", "v1"
        elif resource in _LIST_KINDS:
            kind, api_version = _LIST_KINDS[resource]
        else:
            kind, api_version = "NetworkAttachmentDefinitionList", NAD_API_VERSION
        return {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": version}, "items": items}

    def _patch(self, request: Request, namespace: str, name: str, *, status: bool) -> dict[str, Any]:
        if request.content_type not in _PATCH_TYPES:
            raise _ApiError(415, f"the API double does not take {request.content_type or 'no content type'} patches")
        try:
            patch = request.json()
        except ValueError as exc:
            raise _ApiError(400, f"the patch is not JSON: {exc}") from exc
        if not isinstance(patch, dict):
            raise _ApiError(400, "a merge patch must be a JSON object")
        with self._cond:
            old = self._objects[PODS].get((namespace, name))
            if old is None:
                raise _ApiError(404, f'pods "{name}" not found')
            old_meta = old["metadata"]
            patch_meta = patch.get("metadata") or {}
            if "uid" in patch_meta and patch_meta["uid"] != old_meta["uid"]:
                raise _ApiError(
                    409,
                    f"Precondition failed: UID in precondition: {patch_meta['uid']}, "
                    f"UID in object meta: {old_meta['uid']}",
                )
            if "resourceVersion" in patch_meta and patch_meta["resourceVersion"] != old_meta["resourceVersion"]:
                raise _ApiError(409, "the object has been modified; please apply your changes to the latest version")
            new = _merge(old, patch)
            # a subresource changes only its own part (and metadata): as the real registry
            if status:
                new["spec"] = copy.deepcopy(old["spec"])
            else:
                new["status"] = copy.deepcopy(old["status"])
            for key in ("name", "namespace", "uid", "creationTimestamp"):
                new["metadata"][key] = old_meta[key]
            for key in ("annotations", "labels"):
                values = new["metadata"].get(key) or {}
                if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                    raise _ApiError(422, f"metadata.{key}: must be a map of strings")
            return self._put(PODS, new, "MODIFIED")

    def _watch(
        self, handler: _Handler, request: Request, *, resource: str, namespace: str | None, selector: _Selector
    ) -> None:
        since_text = request.query.get("resourceVersion", [""])[0]
        timeout = float(request.query.get("timeoutSeconds", ["300"])[0])
        # As the real server: HTTP/1.1 chunked, one event per chunk, so a client reads each as
        # it comes (a body without length would be read to its end first).
        handler.protocol_version = "HTTP/1.1"
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            self._stream_events(
                handler,
                resource=resource,
                namespace=namespace,
                selector=selector,
                since_text=since_text,
                timeout=timeout,
            )
        finally:
            handler.wfile.write(b"0\r\n\r\n")

    def _stream_events(
        self,
        handler: _Handler,
        *,
        resource: str,
        namespace: str | None,
        selector: _Selector,
        since_text: str,
        timeout: float,
    ) -> None:
        with self._cond:
            if since_text in ("", "0"):  # "start at most recent": current objects as ADDED first
                lines = [
                    {"type": "ADDED", "object": copy.deepcopy(obj)}
                    for (ns, _), obj in sorted(self._objects[resource].items())
                    if (namespace is None or ns == namespace) and selector.matches(obj)
                ]
                since = self._resource_version
            else:
                since = int(since_text)
                lines = []
                if since < self._oldest_watchable:
                    gone = _status_doc(410, f"too old resource version: {since} ({self._oldest_watchable})")
                    lines = [{"type": "ERROR", "object": gone}]
                    since = -1
        if since < 0:
            _write_lines(handler, lines)
            return
        deadline = time.monotonic() + timeout
        while True:
            _write_lines(handler, lines)
            with self._cond:
                fresh: list[_Event] = []
                while not fresh:
                    remaining = deadline - time.monotonic()
                    if self._stopping.is_set() or remaining <= 0:
                        return
                    fresh = [e for e in self._events if e.resource_version > since and e.resource == resource]
                    if not fresh:
                        self._cond.wait(remaining)
                since = fresh[-1].resource_version
                lines = [
                    {"type": e.type, "object": copy.deepcopy(e.obj)}
                    for e in fresh
                    if (namespace is None or e.obj["metadata"]["namespace"] == namespace) and selector.matches(e.obj)
                ]

    def _put(self, resource: str, obj: dict[str, Any], event: str) -> dict[str, Any]:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        with self._cond:
            if event == "ADDED" and key in self._objects[resource]:
                raise ValueError(f"{resource} {key} already exists")
            self._resource_version += 1
            meta["resourceVersion"] = str(self._resource_version)
            self._objects[resource][key] = obj
            self._events.append(_Event(self._resource_version, resource, event, copy.deepcopy(obj)))
            self._cond.notify_all()
            return copy.deepcopy(obj)

    def _delete(self, resource: str, namespace: str, name: str) -> None:
        with self._cond:
            obj = self._objects[resource].pop((namespace, name))
            self._resource_version += 1
            obj["metadata"]["resourceVersion"] = str(self._resource_version)
            self._events.append(_Event(self._resource_version, resource, "DELETED", obj))
            self._cond.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() waits for the handlers: no socket outlives a test
    double: ApiDouble

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._conns_lock = threading.Lock()
        self._idle: set[socket.socket] = set()  # kept-alive connections waiting for a request
        self._closing = False

    def set_idle(self, conn: socket.socket, idle: bool) -> bool:
        """Record whether `conn` waits for its next request; False once the server closes
        (the handler then ends the connection)."""
        with self._conns_lock:
            if idle:
                self._idle.add(conn)
            else:
                self._idle.discard(conn)
            return not self._closing

    def close_idle(self) -> None:
        """Hang up every idle connection, and make busy ones end after their answer."""
        with self._conns_lock:
            self._closing = True
            idle, self._idle = list(self._idle), set()
        for conn in idle:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._idle.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, ConnectionError):  # a client hanging up is normal
            self.double.errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real server
    # TCP_NODELAY, as Go's net package sets by default: on a kept-alive connection the
    # body (a second small write after the headers) would otherwise wait for the client's
    # delayed ACK, ~40 ms per request.
    disable_nagle_algorithm = True
    server: _Server

    def handle_one_request(self) -> None:
        if not self.server.set_idle(self.connection, True):
            self.close_connection = True
            return
        super().handle_one_request()
        if not self.server.set_idle(self.connection, False):
            self.close_connection = True

    def parse_request(self) -> bool:
        self.server.set_idle(self.connection, False)  # a request came: busy until answered
        return super().parse_request()

    def do_GET(self) -> None:
        self.server.double._serve(self)

    def do_PATCH(self) -> None:
        self.server.double._serve(self)

    def do_POST(self) -> None:
        self.server.double._serve(self)

    def do_PUT(self) -> None:
        self.server.double._serve(self)

    def do_DELETE(self) -> None:
        self.server.double._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the record is `ApiDouble.requests`."""


class _Selector:
    """fieldSelector (`spec.nodeName`, `metadata.name`, `metadata.namespace`) and
    labelSelector, equality terms only, comma meaning AND."""

    _FIELDS = {
        "spec.nodeName": ("spec", "nodeName"),
        "metadata.name": ("metadata", "name"),
        "metadata.namespace": ("metadata", "namespace"),
    }

    def __init__(self, query: dict[str, list[str]]) -> None:
        self._fields = list(self._terms(query.get("fieldSelector", [""])[0]))
        self._labels = list(self._terms(query.get("labelSelector", [""])[0]))
        for field, _ in self._fields:
            if field not in self._FIELDS:
                raise _ApiError(400, f'field label not supported: "{field}"')

    @staticmethod
    def _terms(text: str) -> Iterator[tuple[str, str]]:
        for term in filter(None, text.split(",")):
            key, sep, value = term.replace("==", "=").partition("=")
            if not sep:
                raise _ApiError(400, f"the API double takes only equality selectors, not {term!r}")
            yield key.strip(), value.strip()

    def matches(self, obj: dict[str, Any]) -> bool:
        for field, value in self._fields:
            section, key = self._FIELDS[field]
            if str(obj.get(section, {}).get(key, "")) != value:
                return False
        labels = obj["metadata"].get("labels") or {}
        return all(labels.get(key) == value for key, value in self._labels)


def _metadata(
    namespace: str,
    name: str,
    *,
    uid: str | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or str(uuid.uuid4()),
        "creationTimestamp": CREATED,
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _qualified(resource: str) -> str:
    """The resource as the real server names it in messages (`pods`, `x.k8s.cni.cncf.io`)."""
    return resource if resource == PODS else f"{resource}.k8s.cni.cncf.io"


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (null deletes). For maps, a strategic merge is the same."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _status_doc(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, HTTPStatus(code).phrase.replace(" ", "")),
        "code": code,
    }


def _send(handler: _Handler, code: int, doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _write_lines(handler: _Handler, lines: list[dict[str, Any]]) -> None:
    """Each event as one chunk of a chunked body."""
    for line in lines:
        data = json.dumps(line).encode() + b"\n"
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    handler.wfile.flush()
