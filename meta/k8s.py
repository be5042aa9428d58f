"""The Kubernetes API as a network source: pods, NetworkAttachmentDefinitions and the
network-status annotation, through the official `kubernetes` client.

This is the only module that imports `kubernetes` (~200 ms to import), so the CNI path
imports it only when a kubeconfig is configured; keep everything else out of it. It
returns meta.source models and raises meta.source errors, never the client's types.

Each call is one HTTP request bounded by the `timeout` given at construction; nothing is
retried here. The daemon's watch caches (meta/watchcache.py) use the versioned lists and
the watches (`watch_pods`, `watch_attachments`: the client's own `kubernetes.watch`);
whoever wants to count the API requests passes `on_request`, called with the verb (get,
list, watch, patch) of each request before it is sent. On the CNI path an unreachable
server becomes `Unavailable` (error 11) and the runtime retries the whole ADD, which is
cheaper and more honest than retrying inside a deadline. Responses are read as plain
JSON (`_preload_content=False`, and raw watch events): a pod is not turned into the
client's model objects only to be turned into ours.

Messages name the object and the server URL; kubeconfigs and tokens are never logged or
put into errors."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import urllib3
import yaml
from kubernetes import client, config
from kubernetes import watch as kube_watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from meta import kubelight
from meta.kubelight import object_annotations, object_metadata
from meta.model import NETWORK_STATUS_ANNOTATION
from meta.source import (
    Forbidden,
    Namespace,
    NetworkAttachment,
    NotFound,
    Pod,
    PolicyObject,
    SourceError,
    Unavailable,
    encode_network_status,
)
from meta.watchcache import Expired, WatchEvent

NAD_GROUP = "k8s.cni.cncf.io"
NAD_VERSION = "v1"
NAD_PLURAL = "network-attachment-definitions"
POLICY_VERSION = "v1beta1"  # MultiNetworkPolicy's storage version (v1beta2 is served too)
POLICY_PLURAL = "multi-networkpolicies"
# RFC 7386, asked for explicitly: for a dict body the client would send a strategic merge
# patch (a fallback in its REST layer). For an annotations map the two mean the same, and a
# merge patch is the standard one that every resource type takes.
MERGE_PATCH = "application/merge-patch+json"
DEFAULT_TIMEOUT = 10.0
USER_AGENT = "netplex"
WATCH_READ_SLACK = 30.0  # seconds past the server-side watch timeout before a read gives up
SERVICE_HOST_ENV = "KUBERNETES_SERVICE_HOST"  # set in every pod: in-cluster config is possible

T = TypeVar("T")
RequestHook = Callable[[str], None]


class Kube:
    """A meta.source.Source on a Kubernetes API server."""

    def __init__(
        self, api: client.ApiClient, *, timeout: float = DEFAULT_TIMEOUT, on_request: RequestHook | None = None,
        writer: kubelight.LightKube | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self._api = api
        # The per-ADD writes (the status PATCH, event POSTs) go over the stdlib client when
        # the credentials allow it: the generated client costs ~2 ms of CPU a request in
        # urllib3 and its models, the daemon's largest share after netlink and IPAM.
        self._writer = writer
        self._on_request = on_request
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._timeout = timeout
        self._server = str(api.configuration.host)
        api.user_agent = USER_AGENT

    @classmethod
    def from_kubeconfig(
        cls, path: str, *, timeout: float = DEFAULT_TIMEOUT, on_request: RequestHook | None = None
    ) -> Kube:
        """A client for the current context of the kubeconfig at `path`. A missing file is
        `Unavailable` (the installer may not have written it yet); a bad one, `SourceError`."""
        what = f'kubeconfig "{path}"'
        if not os.path.isfile(path):
            raise Unavailable(what, "no such file")
        configuration = _configuration()
        try:
            # persist_config=False: a CNI plugin never rewrites the kubeconfig (token refresh)
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, client_configuration=configuration, persist_config=False
            )
        except ConfigException as exc:  # its messages name keys and paths, not values
            raise SourceError(what, f"cannot load: {_first_line(exc)}") from exc
        except yaml.MarkedYAMLError as exc:  # its str() quotes the file: it may hold a token
            line = exc.problem_mark.line + 1 if exc.problem_mark else 0
            raise SourceError(what, f"cannot load: invalid YAML at line {line}") from exc
        except (yaml.YAMLError, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SourceError(what, f"cannot load: {type(exc).__name__}") from exc
        writer = None
        with contextlib.suppress(SourceError):  # what the stdlib client cannot read, this one did
            writer = kubelight.from_kubeconfig(path, timeout=timeout)
        return cls(client.ApiClient(configuration), timeout=timeout, on_request=on_request, writer=writer)

    @classmethod
    def in_cluster(cls, *, timeout: float = DEFAULT_TIMEOUT, on_request: RequestHook | None = None) -> Kube:
        """A client from the pod's service account (the daemon's way in)."""
        configuration = _configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (ConfigException, OSError) as exc:
            raise SourceError("in-cluster config", f"cannot load: {_first_line(exc)}") from exc
        writer = None
        with contextlib.suppress(SourceError):
            writer = kubelight.in_cluster(timeout=timeout)
        return cls(client.ApiClient(configuration), timeout=timeout, on_request=on_request, writer=writer)

    def close(self) -> None:
        """Close the connection pools."""
        self._api.close()  # type: ignore[no-untyped-call]
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_pod(self, namespace: str, name: str) -> Pod:
        """One pod. `Pod.uid` is the API's: when the runtime passes K8S_POD_UID and it
        differs, the pod was deleted and recreated under the same name; the caller fails the
        ADD (as Multus does) so kubelet retries with the new pod."""
        what = f'pod "{namespace}/{name}"'
        doc = self._call(what, "get", self._core.read_namespaced_pod, name, namespace)
        return _pod(doc, what)

    def get_attachment(self, namespace: str, name: str) -> NetworkAttachment:
        """One NetworkAttachmentDefinition; `config` is its spec.config, "" when absent."""
        what = f'NetworkAttachmentDefinition "{namespace}/{name}"'
        doc = self._call(
            what, "get", self._custom.get_namespaced_custom_object, NAD_GROUP, NAD_VERSION, namespace, NAD_PLURAL,
            name,
        )
        return _attachment(doc, what)

    def set_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        """Write the network-status annotation with ONE merge patch of the pod's `status`
        subresource (what Multus writes, and what RBAC `pods/status: patch` allows).

        The pod's UID, when known, rides in the patch as a precondition (as kubelet does for
        pod status): if the pod was replaced by another of the same name, the server answers
        409 and this raises `NotFound` instead of annotating the wrong pod."""
        if self._writer is not None:
            self.count_request("patch")
            self._writer.set_network_status(pod, status)
            return
        what = f'pod "{pod.namespace}/{pod.name}"'
        metadata: dict[str, Any] = {"annotations": {NETWORK_STATUS_ANNOTATION: encode_network_status(status)}}
        if pod.uid:
            metadata["uid"] = pod.uid
        self._call(
            what,
            "patch",
            self._core.patch_namespaced_pod_status,
            pod.name,
            pod.namespace,
            {"metadata": metadata},
            _content_type=MERGE_PATCH,
            translate=_translate_uid_conflict,
        )

    def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        """POST one core/v1 Event (meta.events builds it; RBAC `events: create`)."""
        if self._writer is not None:
            self.count_request("create")
            self._writer.create_event(namespace, event)
            return
        self._call(f'event in "{namespace}"', "create", self._core.create_namespaced_event, namespace, event)

    def list_pods(self, node_name: str) -> list[Pod]:
        """Every pod scheduled to `node_name`, in all namespaces (one unpaged list)."""
        return self.list_pods_versioned(node_name)[0]

    def list_pods_versioned(self, node_name: str) -> tuple[list[Pod], str]:
        """`list_pods` and the list's resourceVersion, to watch from."""
        what = f'pods on node "{node_name}"'
        doc = self._call(
            what, "list", self._core.list_pod_for_all_namespaces, field_selector=_node_selector(node_name)
        )
        return [_pod(item, what) for item in _items(doc, what)], _list_version(doc)

    def list_attachments(self, namespace: str | None = None) -> list[NetworkAttachment]:
        """Every NetworkAttachmentDefinition in `namespace`, or in all namespaces."""
        if namespace is None:
            return self.list_attachments_versioned()[0]
        what = f'NetworkAttachmentDefinitions in "{namespace}"'
        doc = self._call(
            what, "list", self._custom.list_namespaced_custom_object, NAD_GROUP, NAD_VERSION, namespace, NAD_PLURAL
        )
        return [_attachment(item, what) for item in _items(doc, what)]

    def list_attachments_versioned(self) -> tuple[list[NetworkAttachment], str]:
        """Every NetworkAttachmentDefinition in the cluster and the list's resourceVersion."""
        what = "NetworkAttachmentDefinitions"
        doc = self._call(what, "list", self._custom.list_cluster_custom_object, NAD_GROUP, NAD_VERSION, NAD_PLURAL)
        return [_attachment(item, what) for item in _items(doc, what)], _list_version(doc)

    def watch_pods(self, node_name: str, *, resource_version: str, timeout: int) -> Watch[Pod]:
        """The changes to the pods of `node_name` after `resource_version`, for up to
        `timeout` seconds (the server ends the watch then)."""
        return Watch(
            self, f'pods on node "{node_name}"', _pod, self._core.list_pod_for_all_namespaces,
            resource_version=resource_version, timeout=timeout, field_selector=_node_selector(node_name),
        )

    def watch_attachments(self, *, resource_version: str, timeout: int) -> Watch[NetworkAttachment]:
        """The changes to every NetworkAttachmentDefinition after `resource_version`."""
        return Watch(
            self, "NetworkAttachmentDefinitions", _attachment, self._custom.list_cluster_custom_object,
            NAD_GROUP, NAD_VERSION, NAD_PLURAL, resource_version=resource_version, timeout=timeout,
        )

    # -- network policy (meta/policy/): every pod, namespaces, MultiNetworkPolicies --------

    def list_all_pods_versioned(self) -> tuple[list[Pod], str]:
        """Every pod in the cluster (peers of a policy may run on any node)."""
        doc = self._call("pods", "list", self._core.list_pod_for_all_namespaces)
        return [_pod(item, "pods") for item in _items(doc, "pods")], _list_version(doc)

    def watch_all_pods(self, *, resource_version: str, timeout: int) -> Watch[Pod]:
        return Watch(
            self, "pods", _pod, self._core.list_pod_for_all_namespaces,
            resource_version=resource_version, timeout=timeout,
        )

    def list_namespaces_versioned(self) -> tuple[list[Namespace], str]:
        doc = self._call("namespaces", "list", self._core.list_namespace)
        return [_namespace(item, "namespaces") for item in _items(doc, "namespaces")], _list_version(doc)

    def watch_namespaces(self, *, resource_version: str, timeout: int) -> Watch[Namespace]:
        return Watch(
            self, "namespaces", _namespace, self._core.list_namespace,
            resource_version=resource_version, timeout=timeout,
        )

    def list_policies_versioned(self) -> tuple[list[PolicyObject], str]:
        """Every MultiNetworkPolicy in the cluster and the list's resourceVersion."""
        what = "MultiNetworkPolicies"
        doc = self._call(
            what, "list", self._custom.list_cluster_custom_object, NAD_GROUP, POLICY_VERSION, POLICY_PLURAL
        )
        return [_policy(item, what) for item in _items(doc, what)], _list_version(doc)

    def watch_policies(self, *, resource_version: str, timeout: int) -> Watch[PolicyObject]:
        return Watch(
            self, "MultiNetworkPolicies", _policy, self._custom.list_cluster_custom_object,
            NAD_GROUP, POLICY_VERSION, POLICY_PLURAL, resource_version=resource_version, timeout=timeout,
        )

    def count_request(self, verb: str) -> None:
        """Tell `on_request` about one request (the watches call it for theirs)."""
        if self._on_request is not None:
            self._on_request(verb)

    @property
    def server(self) -> str:
        return self._server

    def _call(
        self,
        what: str,
        verb: str,
        method: Callable[..., Any],
        *args: Any,
        translate: Callable[[ApiException, str], SourceError] | None = None,
        **kwargs: Any,
    ) -> Any:
        """One request; the decoded JSON body, or our error for whatever went wrong."""
        self.count_request(verb)
        try:
            response = method(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
            try:
                body = response.data
            finally:
                response.release_conn()
        except ApiException as exc:
            raise (translate or _translate)(exc, what) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(what, f"cannot reach the API server {self._server}: {_describe(exc)}") from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise SourceError(what, "the API server's answer is not JSON") from exc


class Watch(Generic[T]):
    """One watch request (the client's list call with `watch=True`, read line by line as
    `kubernetes.watch` does): iterate it for `WatchEvent`s until the server ends it (its
    timeout), `stop()` is called from another thread, or it fails: `Expired` when the
    resourceVersion is too old (HTTP 410: list again), `Unavailable` when the server cannot
    be reached or the stream breaks, `SourceError` otherwise. Objects are converted from
    the raw JSON (no client models); BOOKMARK events carry only a version.

    `stop()` shuts the connection's socket down, which wakes a reader blocked on it. (The
    client's own `Watch.stop()` cannot reach the socket once the server said
    `Connection: close`, and a stop that comes before its first event is lost.)"""

    def __init__(
        self,
        kube: Kube,
        what: str,
        convert: Callable[[Any, str], T],
        method: Callable[..., Any],
        *args: Any,
        resource_version: str,
        timeout: int,
        **kwargs: Any,
    ) -> None:
        self._kube = kube
        self._what = what
        self._convert = convert
        self._method = method
        self._args = args
        self._kwargs = kwargs
        self._resource_version = resource_version
        self._timeout = timeout
        self._lock = threading.Lock()
        self._stopped = False
        self._response: Any = None

    def stop(self) -> None:
        """End the watch from any thread."""
        with self._lock:
            self._stopped = True
            response = self._response
        if response is not None:
            _shut_down(response)

    def __iter__(self) -> Iterator[WatchEvent[T]]:
        with self._lock:
            if self._stopped:
                return
        self._kube.count_request("watch")
        try:
            response = self._method(
                *self._args, watch=True, resource_version=self._resource_version, timeout_seconds=self._timeout,
                allow_watch_bookmarks=True, _preload_content=False,
                _request_timeout=self._timeout + WATCH_READ_SLACK, **self._kwargs,
            )
        except ApiException as exc:
            raise _translate(exc, self._what) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(self._what, f"cannot reach the API server {self._kube.server}: {_describe(exc)}") from exc
        try:
            with self._lock:
                self._response = response
                if self._stopped:
                    return
            yield from self._events(response)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if self._stopped:  # our own stop() cut the connection
                return
            raise Unavailable(self._what, f"the watch broke: {_describe(exc)}") from exc
        finally:
            with self._lock:
                self._response = None
            response.close()
            response.release_conn()

    def _events(self, response: Any) -> Iterator[WatchEvent[T]]:
        for line in kube_watch.watch.iter_resp_lines(response):  # type: ignore[no-untyped-call]
            if self._stopped:
                return
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                kind = str(event["type"])
                raw = event["object"]
            except (ValueError, KeyError, TypeError) as exc:
                raise SourceError(self._what, "the API server sent a watch event that is not JSON") from exc
            if kind == "ERROR":
                code = raw.get("code") if isinstance(raw, dict) else None
                if code == 410:
                    raise Expired(self._what, f"resourceVersion {self._resource_version} is too old")
                reason = raw.get("message", "") if isinstance(raw, dict) else ""
                raise _translate(ApiException(status=code if isinstance(code, int) else 0, reason=reason), self._what)
            yield self._event(kind, raw)

    def _event(self, kind: str, raw: Any) -> WatchEvent[T]:
        metadata = raw.get("metadata") if isinstance(raw, dict) else None
        version = str(metadata.get("resourceVersion", "")) if isinstance(metadata, dict) else ""
        if kind == "BOOKMARK":
            return WatchEvent(kind, None, version)
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            raise SourceError(self._what, f"unexpected watch event type {kind[:40]!r}")
        return WatchEvent(kind, self._convert(raw, self._what), version)


def _shut_down(response: Any) -> None:
    """Shut down the socket under a urllib3 response, waking a thread blocked reading it.
    The socket is the connection's (keep-alive), or, once http.client handed it to the
    response (`Connection: close`), the response's file's."""
    connection = getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        raw_file = getattr(getattr(getattr(response, "_fp", None), "fp", None), "raw", None)
        sock = getattr(raw_file, "_sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def in_cluster_available() -> bool:
    """True inside a pod, where the service account's in-cluster config can work."""
    return bool(os.environ.get(SERVICE_HOST_ENV))


def _node_selector(node_name: str) -> str:
    return f"spec.nodeName={node_name}"


def _list_version(doc: Any) -> str:
    metadata = doc.get("metadata") if isinstance(doc, dict) else None
    return str(metadata.get("resourceVersion", "")) if isinstance(metadata, dict) else ""


def _configuration() -> client.Configuration:
    configuration = client.Configuration()
    # No retries: the first failure is reported (see the module docstring).
    configuration.retries = urllib3.Retry(total=0, redirect=0)
    return configuration


def _translate(exc: ApiException, what: str) -> SourceError:
    """Map the API's HTTP status to our error types (by status code, never by message)."""
    status = exc.status or 0
    reason = exc.reason or "no reason"
    if status == 404:
        return NotFound(what, "not found")
    if status in (401, 403):
        return Forbidden(what, f"the API server refused access (HTTP {status}): check netplex's RBAC")
    if status == 429 or status >= 500:
        return Unavailable(what, f"the API server cannot answer now (HTTP {status} {reason})")
    if status == 0:  # the client's own failure before any HTTP status, e.g. TLS
        return Unavailable(what, f"cannot talk to the API server: {reason.splitlines()[0]}")
    return SourceError(what, f"the API server answered HTTP {status} {reason}")


def _translate_uid_conflict(exc: ApiException, what: str) -> SourceError:
    """For a patch carrying the pod's UID: 409 means that pod is gone (replaced)."""
    if exc.status == 409:
        return NotFound(what, "replaced by another pod of the same name (its uid changed)")
    return _translate(exc, what)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _describe(exc: BaseException) -> str:
    """A short cause for a connection failure: the OS error, or 'timed out'."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, urllib3.exceptions.MaxRetryError) and seen.reason is not None:
            seen = seen.reason
            continue
        if isinstance(seen, (urllib3.exceptions.ReadTimeoutError, TimeoutError)) or (
            isinstance(seen, urllib3.exceptions.ConnectTimeoutError)
            and not isinstance(seen, urllib3.exceptions.NewConnectionError)
        ):
            return "timed out"
        if isinstance(seen, OSError) and seen.errno:
            return seen.strerror or errno.errorcode.get(seen.errno, str(seen.errno))
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def _pod(doc: Any, what: str) -> Pod:
    metadata = object_metadata(doc, what)
    return Pod(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        annotations=object_annotations(metadata, what),
        labels=_labels(metadata),
        named_ports=_named_ports(doc),
    )


def _namespace(doc: Any, what: str) -> Namespace:
    metadata = object_metadata(doc, what)
    return Namespace(name=str(metadata.get("name", "")), labels=_labels(metadata))


def _policy(doc: Any, what: str) -> PolicyObject:
    metadata = object_metadata(doc, what)
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        raise SourceError(what, "spec is not an object")
    return PolicyObject(
        namespace=str(metadata.get("namespace", "")), name=str(metadata.get("name", "")),
        annotations=object_annotations(metadata, what), spec=spec,
    )


def _labels(metadata: dict[str, Any]) -> dict[str, str]:
    labels = metadata.get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _named_ports(doc: Any) -> dict[str, tuple[str, int]]:
    """name -> (protocol, containerPort) over the pod's containers (for named policy ports)."""
    spec = doc.get("spec") if isinstance(doc, dict) else None
    found: dict[str, tuple[str, int]] = {}
    containers = spec.get("containers") if isinstance(spec, dict) else None
    for container in containers if isinstance(containers, list) else []:
        ports = container.get("ports") if isinstance(container, dict) else None
        for port in ports if isinstance(ports, list) else []:
            if isinstance(port, dict) and port.get("name") and isinstance(port.get("containerPort"), int):
                found.setdefault(str(port["name"]), (str(port.get("protocol") or "TCP"), port["containerPort"]))
    return found


def _attachment(doc: Any, what: str) -> NetworkAttachment:
    metadata = object_metadata(doc, what)
    spec = doc.get("spec") or {}
    conf = spec.get("config", "") if isinstance(spec, dict) else None
    if not isinstance(conf, str):
        raise SourceError(what, "spec.config is not a string")
    return NetworkAttachment(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        config=conf,
        annotations=object_annotations(metadata, what),
    )



def _items(doc: Any, what: str) -> list[Any]:
    items = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise SourceError(what, "the API server's list has no items")
    return items
