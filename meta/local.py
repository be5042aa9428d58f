"""The local network source: a directory of Kubernetes manifests standing in for the API
server on machines without Kubernetes (podman, nerdctl, `netplex demo`).

The directory holds Pods and NetworkAttachmentDefinitions as the API would: `*.yaml`,
`*.yml` (several documents per file allowed) and `*.json` files directly in it; `List`
documents (`kubectl get -o yaml`) are unpacked; other kinds are skipped. Files are read on
first use, once per `LocalSource`. A file that cannot be parsed, or a Pod or NAD that the
API server would reject (no name, annotations that are not strings, a non-string
spec.config), is a `SourceError` naming the file; two objects of one kind and name are too.

Rules that differ from the API server, on purpose:
- A pod with no manifest is a pod without annotations, not `NotFound`: outside Kubernetes
  a container has no manifest, and its defaultNetworks must still apply.
- An empty namespace means "default" (podman passes K8S_POD_NAME only). A manifest without
  metadata.namespace is in "default" too, as with `kubectl apply`.
- A missing directory is an empty one.
- network-status is written beside the manifests, not into them: the annotation's value
  goes to `<dir>/status/<namespace>_<pod>.json` (atomically: write beside, rename), and
  `get_pod` merges it back into the pod's annotations, so a read after a write sees it.
  A namespace is a DNS label (no "_"), so the file name is unambiguous; a pod name is
  checked to be a safe file name (letters, digits, "-", ".", "_"; podman names allow "_").

This module must not import `kubernetes`: it is the source when no kubeconfig is set."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
import yaml

from cni import store
from meta.model import NETWORK_STATUS_ANNOTATION
from meta.source import (
    NetworkAttachment,
    NotFound,
    Pod,
    SourceError,
    encode_network_status,
)

DEFAULT_NAMESPACE = "default"
STATUS_DIR = "status"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
POD_KIND = "Pod"
NAD_KIND = "NetworkAttachmentDefinition"
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_POD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when libyaml is there

Manifest = Pod | NetworkAttachment


@dataclasses.dataclass(frozen=True)
class Manifests:
    """The objects of one directory, keyed by (namespace, name), with the file of each."""

    pods: Mapping[tuple[str, str], Pod]
    attachments: Mapping[tuple[str, str], NetworkAttachment]
    files: Mapping[tuple[str, str, str], str]  # (kind, namespace, name) -> path


class LocalSource:
    """A meta.source.Source on a directory of manifests (see the module docstring)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._manifests: Manifests | None = None

    def get_pod(self, namespace: str, name: str) -> Pod:
        namespace = namespace or DEFAULT_NAMESPACE
        status_path = self._status_path(namespace, name)
        pod = self._load().pods.get((namespace, name)) or Pod(namespace=namespace, name=name)
        status = _read_status(status_path)
        if status is None:
            return pod
        return msgspec.structs.replace(pod, annotations={**pod.annotations, NETWORK_STATUS_ANNOTATION: status})

    def get_attachment(self, namespace: str, name: str) -> NetworkAttachment:
        namespace = namespace or DEFAULT_NAMESPACE
        attachment = self._load().attachments.get((namespace, name))
        if attachment is None:
            raise NotFound(f'NetworkAttachmentDefinition "{namespace}/{name}"', f'no manifest in "{self.directory}"')
        return attachment

    def set_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        """Write the annotation's value to the pod's status file, atomically."""
        namespace = pod.namespace or DEFAULT_NAMESPACE
        path = self._status_path(namespace, pod.name)
        try:
            store.atomic_write(path, encode_network_status(status).encode(), mode=0o644)
        except OSError as exc:
            raise SourceError(f'pod "{namespace}/{pod.name}"', f'cannot write "{path}": {exc.strerror}') from exc

    def _load(self) -> Manifests:
        if self._manifests is None:
            self._manifests = load_manifests(self.directory)
        return self._manifests

    def _status_path(self, namespace: str, name: str) -> str:
        if not _NAMESPACE.fullmatch(namespace) or not _POD_NAME.fullmatch(name):
            raise SourceError(f"pod {namespace!r}/{name!r}", "not a valid namespace and pod name for a status file")
        return os.path.join(self.directory, STATUS_DIR, f"{namespace}_{name}.json")


def load_manifests(directory: str) -> Manifests:
    """Every Pod and NAD in `directory` (not its subdirectories); raises `SourceError`."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        names = []
    except OSError as exc:
        raise SourceError(f'manifest directory "{directory}"', exc.strerror or str(exc)) from exc
    pods: dict[tuple[str, str], Pod] = {}
    attachments: dict[tuple[str, str], NetworkAttachment] = {}
    files: dict[tuple[str, str, str], str] = {}
    for filename in names:
        path = os.path.join(directory, filename)
        if filename.startswith(".") or not filename.endswith(MANIFEST_SUFFIXES) or not os.path.isfile(path):
            continue
        for obj in read_manifests(path):
            kind = POD_KIND if isinstance(obj, Pod) else NAD_KIND
            key = (kind, obj.namespace, obj.name)
            if key in files:
                raise SourceError(
                    f'manifest "{path}"', f'{kind} "{obj.namespace}/{obj.name}" is also defined in "{files[key]}"'
                )
            files[key] = path
            if isinstance(obj, Pod):
                pods[obj.namespace, obj.name] = obj
            else:
                attachments[obj.namespace, obj.name] = obj
    return Manifests(pods=pods, attachments=attachments, files=files)


def read_manifests(path: str) -> list[Manifest]:
    """The Pods and NADs of one manifest file (YAML documents, or one JSON document)."""
    what = f'manifest "{path}"'
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise SourceError(what, f"cannot read: {exc.strerror}") from exc
    if len(data) > MAX_MANIFEST_BYTES:
        raise SourceError(what, f"larger than {MAX_MANIFEST_BYTES} bytes")
    documents = _parse(data, json_file=path.endswith(".json"), what=what)
    objects: list[Manifest] = []
    for index, doc in enumerate(documents, start=1):
        for obj in _unpack(doc, what=f"{what}, document {index}"):
            objects.append(obj)
    return objects


def _parse(data: bytes, *, json_file: bool, what: str) -> list[Any]:
    # JSON goes through the json module: PyYAML (YAML 1.1) rejects tab-indented JSON
    if json_file:
        try:
            return [json.loads(data)]
        except UnicodeDecodeError as exc:
            raise SourceError(what, "not UTF-8") from exc
        except json.JSONDecodeError as exc:
            raise SourceError(what, f"invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    try:
        return [doc for doc in yaml.load_all(data, Loader=_LOADER) if doc is not None]
    except yaml.MarkedYAMLError as exc:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise SourceError(what, f"invalid YAML{line}: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise SourceError(what, f"invalid YAML: {exc}") from exc


def _unpack(doc: Any, *, what: str, item_kind: str = "") -> Iterator[Manifest]:
    if not isinstance(doc, dict):
        raise SourceError(what, "not a Kubernetes object (a mapping with kind and metadata)")
    kind = doc.get("kind") or item_kind
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        inner = kind.removesuffix("List") if kind != "List" else ""
        for number, item in enumerate(doc["items"], start=1):
            yield from _unpack(item, what=f"{what}, item {number}", item_kind=inner)
    elif kind == POD_KIND:
        namespace, name, annotations = _metadata(doc, what=what, kind=kind)
        uid = doc["metadata"].get("uid", "")
        yield Pod(namespace=namespace, name=name, uid=str(uid), annotations=annotations)
    elif kind == NAD_KIND:
        namespace, name, annotations = _metadata(doc, what=what, kind=kind)
        spec = doc.get("spec") or {}
        config = spec.get("config", "") if isinstance(spec, dict) else None
        if not isinstance(config, str):
            raise SourceError(what, f'{kind} "{namespace}/{name}": spec.config must be a string (a JSON document)')
        yield NetworkAttachment(namespace=namespace, name=name, config=config, annotations=annotations)


def _metadata(doc: dict[str, Any], *, what: str, kind: str) -> tuple[str, str, dict[str, str]]:
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise SourceError(what, f"{kind} without metadata.name")
    name: str = metadata["name"]
    namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
    if not isinstance(namespace, str):
        raise SourceError(what, f'{kind} "{name}": metadata.namespace must be a string')
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise SourceError(what, f'{kind} "{namespace}/{name}": metadata.annotations must be a map')
    for key, value in annotations.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SourceError(what, f'{kind} "{namespace}/{name}": annotation "{key}" must be a string (quote it)')
    return namespace, name, dict(annotations)


def _read_status(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f'status file "{path}"', f"cannot read: {exc}") from exc
