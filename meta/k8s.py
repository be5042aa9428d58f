"""The Kubernetes API as a network source: pods, NetworkAttachmentDefinitions and the
network-status annotation, through the official `kubernetes` client.

This is the only module that imports `kubernetes` (~200 ms to import), so the CNI path
imports it only when a kubeconfig is configured; keep everything else out of it. It
returns meta.source models and raises meta.source errors, never the client's types.

Each call is one HTTP request bounded by the `timeout` given at construction; nothing is
retried here. On the CNI path an unreachable server becomes `Unavailable` (error 11) and
the runtime retries the whole ADD, which is cheaper and more honest than retrying inside a
deadline. Responses are read as plain JSON (`_preload_content=False`): a pod is not turned
into the client's model objects only to be turned into ours.

Messages name the object and the server URL; kubeconfigs and tokens are never logged or
put into errors."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from meta.model import NETWORK_STATUS_ANNOTATION
from meta.source import (
    Forbidden,
    NetworkAttachment,
    NotFound,
    Pod,
    SourceError,
    Unavailable,
    encode_network_status,
)

NAD_GROUP = "k8s.cni.cncf.io"
NAD_VERSION = "v1"
NAD_PLURAL = "network-attachment-definitions"
# RFC 7386, asked for explicitly: for a dict body the client would send a strategic merge
# patch (a fallback in its REST layer). For an annotations map the two mean the same, and a
# merge patch is the standard one that every resource type takes.
MERGE_PATCH = "application/merge-patch+json"
DEFAULT_TIMEOUT = 10.0
USER_AGENT = "netplex"


class Kube:
    """A meta.source.Source on a Kubernetes API server."""

    def __init__(self, api: client.ApiClient, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self._api = api
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._timeout = timeout
        self._server = str(api.configuration.host)
        api.user_agent = USER_AGENT

    @classmethod
    def from_kubeconfig(cls, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> Kube:
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
        return cls(client.ApiClient(configuration), timeout=timeout)

    @classmethod
    def in_cluster(cls, *, timeout: float = DEFAULT_TIMEOUT) -> Kube:
        """A client from the pod's service account (the daemon's way in)."""
        configuration = _configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (ConfigException, OSError) as exc:
            raise SourceError("in-cluster config", f"cannot load: {_first_line(exc)}") from exc
        return cls(client.ApiClient(configuration), timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._api.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_pod(self, namespace: str, name: str) -> Pod:
        """One pod. `Pod.uid` is the API's: when the runtime passes K8S_POD_UID and it
        differs, the pod was deleted and recreated under the same name; the caller fails the
        ADD (as Multus does) so kubelet retries with the new pod."""
        what = f'pod "{namespace}/{name}"'
        doc = self._call(what, self._core.read_namespaced_pod, name, namespace)
        return _pod(doc, what)

    def get_attachment(self, namespace: str, name: str) -> NetworkAttachment:
        """One NetworkAttachmentDefinition; `config` is its spec.config, "" when absent."""
        what = f'NetworkAttachmentDefinition "{namespace}/{name}"'
        doc = self._call(
            what, self._custom.get_namespaced_custom_object, NAD_GROUP, NAD_VERSION, namespace, NAD_PLURAL, name
        )
        return _attachment(doc, what)

    def set_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        """Write the network-status annotation with ONE merge patch of the pod's `status`
        subresource (what Multus writes, and what RBAC `pods/status: patch` allows).

        The pod's UID, when known, rides in the patch as a precondition (as kubelet does for
        pod status): if the pod was replaced by another of the same name, the server answers
        409 and this raises `NotFound` instead of annotating the wrong pod."""
        what = f'pod "{pod.namespace}/{pod.name}"'
        metadata: dict[str, Any] = {"annotations": {NETWORK_STATUS_ANNOTATION: encode_network_status(status)}}
        if pod.uid:
            metadata["uid"] = pod.uid
        self._call(
            what,
            self._core.patch_namespaced_pod_status,
            pod.name,
            pod.namespace,
            {"metadata": metadata},
            _content_type=MERGE_PATCH,
            translate=_translate_uid_conflict,
        )

    def list_pods(self, node_name: str) -> list[Pod]:
        """Every pod scheduled to `node_name`, in all namespaces (one unpaged list)."""
        what = f'pods on node "{node_name}"'
        doc = self._call(what, self._core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node_name}")
        return [_pod(item, what) for item in _items(doc, what)]

    def list_attachments(self, namespace: str | None = None) -> list[NetworkAttachment]:
        """Every NetworkAttachmentDefinition in `namespace`, or in all namespaces."""
        if namespace is None:
            what = "NetworkAttachmentDefinitions"
            doc = self._call(what, self._custom.list_cluster_custom_object, NAD_GROUP, NAD_VERSION, NAD_PLURAL)
        else:
            what = f'NetworkAttachmentDefinitions in "{namespace}"'
            doc = self._call(
                what, self._custom.list_namespaced_custom_object, NAD_GROUP, NAD_VERSION, namespace, NAD_PLURAL
            )
        return [_attachment(item, what) for item in _items(doc, what)]

    def _call(
        self,
        what: str,
        method: Callable[..., Any],
        *args: Any,
        translate: Callable[[ApiException, str], SourceError] | None = None,
        **kwargs: Any,
    ) -> Any:
        """One request; the decoded JSON body, or our error for whatever went wrong."""
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
    metadata = _metadata(doc, what)
    return Pod(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        annotations=_annotations(metadata, what),
    )


def _attachment(doc: Any, what: str) -> NetworkAttachment:
    metadata = _metadata(doc, what)
    spec = doc.get("spec") or {}
    conf = spec.get("config", "") if isinstance(spec, dict) else None
    if not isinstance(conf, str):
        raise SourceError(what, "spec.config is not a string")
    return NetworkAttachment(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        config=conf,
        annotations=_annotations(metadata, what),
    )


def _metadata(doc: Any, what: str) -> dict[str, Any]:
    metadata = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(metadata, dict):
        raise SourceError(what, "the API server's object has no metadata")
    return metadata


def _annotations(metadata: dict[str, Any], what: str) -> dict[str, str]:
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise SourceError(what, "metadata.annotations is not a map of strings")
    return dict(annotations)


def _items(doc: Any, what: str) -> list[Any]:
    items = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise SourceError(what, "the API server's list has no items")
    return items
