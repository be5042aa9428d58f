"""`netplex validate FILE…`: lint what people write for netplex before a node reads it.

Each file is YAML (several documents allowed) or JSON. Each document is checked as what
it is:
- a NetworkAttachmentDefinition: apiVersion, names, and `spec.config` as netplex reads it
  (a conf or a conflist; the built-in delegates' and IPAMs' own config models too);
- a Pod, or a workload with a pod template (Deployment, DaemonSet, StatefulSet,
  ReplicaSet, Job, CronJob, PodTemplate): the selection annotation
  `k8s.v1.cni.cncf.io/networks` and `v1.multus-cni.io/default-network`;
- a netplex (or Multus) config, alone or as a plugin of a conflist: the JSON Schema and
  the MetaConf model, and every inline delegate as a CNI config;
- any other CNI config: as a network netplex could delegate to;
- a `List`: each item. Other Kubernetes kinds are not netplex's and pass.

Every problem names its place as `file:document:path` (documents count from 1, the path
is dotted, annotation keys in brackets). Every error of an object is reported, not only
the first: a model stops at its first, so the check runs again without each key found
bad until it passes or a problem names no key it can drop. An unknown key of a shipped delegate, its
IPAM or a selection element is a warning with the closest known key ("did you mean
`master`?", meta.keyhints). Warnings the models log (an unknown key) are shown and do
not fail the run. Nothing is written, and nothing but the files is read."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import yaml

from cni import config as cni_config
from cni import skel
from cni.config import Conflist
from cni.errors import CniError
from meta import config, keyhints, model, netconfs, selection
from meta.model import DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION

NAD_API_VERSION = "k8s.cni.cncf.io/v1"
NAD_KIND = "NetworkAttachmentDefinition"
META_TYPES = frozenset({"netplex", "multus"})
MAX_FILE_BYTES = 4 * 1024 * 1024
# Where each workload kind keeps its pod template's metadata.
TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("metadata",),
    "PodTemplate": ("template", "metadata"),
    "Deployment": ("spec", "template", "metadata"),
    "DaemonSet": ("spec", "template", "metadata"),
    "StatefulSet": ("spec", "template", "metadata"),
    "ReplicaSet": ("spec", "template", "metadata"),
    "ReplicationController": ("spec", "template", "metadata"),
    "Job": ("spec", "template", "metadata"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "metadata"),
}
_PATHLIKE = re.compile(r"^[A-Za-z0-9_.\-\[\]/]+$")
_ELEMENT = re.compile(r"^element (\d+)(?: \('(?:[^'\\]|\\.)*'\))?: (.*)$", re.DOTALL)  # a selection's
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclasses.dataclass(frozen=True)
class Problem:
    file: str
    document: int
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning: " if self.warning else ""
        return f"{self.file}:{self.document}:{self.path or '(document)'}: {kind}{self.message}"


def run(files: Sequence[str]) -> int:
    """Print every problem of `files`; 1 when any is an error, else 0."""
    problems: list[Problem] = []
    documents = 0
    for path in files:
        found, count = validate_file(path)
        problems.extend(found)
        documents += count
    from meta.policy import lint as policy_lint  # MultiNetworkPolicies, and thin configs beside them

    problems.extend(Problem(*finding) for finding in policy_lint.check(files))
    for problem in problems:
        print(problem)
    errors = sum(1 for problem in problems if not problem.warning)
    warnings = len(problems) - errors
    print(f"{len(files)} file(s), {documents} document(s): {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def validate_file(path: str) -> tuple[list[Problem], int]:
    """The problems of one file and how many documents it holds."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return [Problem(path, 0, "", f"cannot read: {exc.strerror}")], 0
    if len(data) > MAX_FILE_BYTES:
        return [Problem(path, 0, "", f"larger than {MAX_FILE_BYTES // 1024 // 1024} MiB")], 0
    try:
        documents = _parse(data, json_file=path.endswith(".json"))
    except ValueError as exc:
        return [Problem(path, 0, "", str(exc))], 0
    problems: list[Problem] = []
    for index, doc in enumerate(documents, start=1):
        problems.extend(Problem(path, index, where, message, warning) for where, message, warning in check(doc))
    return problems, len(documents)


def check(doc: Any) -> list[tuple[str, str, bool]]:
    """(path, message, is_warning) for one document."""
    findings = _Findings()
    handler = _Collect(findings)
    loggers = [logging.getLogger(name) for name in ("cni", "delegates", "meta")]
    saved = [(logger, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False  # shown once, as a finding, not also on stderr
    try:
        _check_document(doc, findings, "")
    finally:
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate
    return findings.items


class _Findings:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, bool]] = []
        self.where = ""  # the path a logged warning belongs to

    def error(self, path: str, message: str) -> None:
        self.items.append((path, message, False))

    def cni_error(self, path: str, err: CniError) -> None:
        """A model's error: the message's leading `key.path: ` joins `path`."""
        self.error(*_join(path, err.msg))

    def warning(self, path: str, message: str) -> None:
        self.items.append((path, message, True))

    @contextlib.contextmanager
    def at(self, path: str) -> Iterator[None]:
        """Warnings logged inside belong to `path`."""
        saved, self.where = self.where, path
        try:
            yield
        finally:
            self.where = saved


class _Collect(logging.Handler):
    def __init__(self, findings: _Findings) -> None:
        super().__init__(level=logging.WARNING)
        self._findings = findings

    def emit(self, record: logging.LogRecord) -> None:
        where, message = _join(self._findings.where, record.getMessage())
        self._findings.items.append((where, message, True))


def _check_document(doc: Any, findings: _Findings, path: str) -> None:
    if not isinstance(doc, dict):
        findings.error(path, "not a mapping: want a Kubernetes object or a CNI config")
        return
    kind = doc.get("kind")
    if isinstance(kind, str) and "apiVersion" in doc:
        _check_object(doc, kind, findings, path)
    elif "plugins" in doc or "type" in doc:
        _check_cni_config(doc, findings, path)
    else:
        findings.error(path, "neither a Kubernetes object (apiVersion, kind) nor a CNI config (type or plugins)")


def _check_object(doc: dict[str, Any], kind: str, findings: _Findings, path: str) -> None:
    if kind.endswith("List") and isinstance(doc.get("items"), list):
        for number, item in enumerate(doc["items"]):
            _check_document(item, findings, _dot(path, f"items.{number}"))
    elif kind == NAD_KIND:
        _check_nad(doc, findings, path)
    elif kind in TEMPLATE_PATHS:
        _check_pod_metadata(doc, TEMPLATE_PATHS[kind], findings, path)


def _check_nad(doc: dict[str, Any], findings: _Findings, path: str) -> None:
    if doc.get("apiVersion") != NAD_API_VERSION:
        findings.error(_dot(path, "apiVersion"), f"want {NAD_API_VERSION!r}, not {doc.get('apiVersion')!r}")
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        findings.error(_dot(path, "metadata"), "missing: a NetworkAttachmentDefinition needs metadata.name")
        return
    name = metadata.get("name")
    if not isinstance(name, str) or not model.is_object_name(name):
        findings.error(_dot(path, "metadata.name"), f"{name!r} is not a valid object name (a DNS-1123 subdomain)")
        name = ""
    namespace = metadata.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not model.is_namespace(namespace)):
        findings.error(_dot(path, "metadata.namespace"), f"{namespace!r} is not a valid namespace")
    spec = doc.get("spec", {})
    if not isinstance(spec, dict):
        findings.error(_dot(path, "spec"), "must be a mapping")
        return
    text = spec.get("config", "")
    where = _dot(path, "spec.config")
    if not isinstance(text, str):
        findings.error(where, "must be a string holding a JSON CNI config (use a YAML block: `config: |`)")
        return
    if not text.strip():
        return  # NPWG 3.4.1: the config then comes from a file in confDir named like the object
    try:
        raw = json.loads(text)
    except ValueError as exc:
        findings.error(where, f"not valid JSON: {exc}")
        return
    if not isinstance(raw, dict):
        findings.error(where, "not a JSON object")
        return
    _check_cni_config(raw, findings, where, default_name=name)
    from meta.devices import hints  # NFV: a resourceName its plugins cannot use

    for message in hints.resource_warnings(metadata.get("annotations"), raw):
        findings.items.append((_dot(path, "metadata.annotations"), message, True))


def _check_pod_metadata(doc: dict[str, Any], keys: tuple[str, ...], findings: _Findings, path: str) -> None:
    metadata: Any = doc
    for key in keys:
        metadata = metadata.get(key) if isinstance(metadata, dict) else None
    if not isinstance(metadata, dict):
        return  # no annotations: no selection
    namespace = _own_namespace(doc)
    where = _dot(path, ".".join(keys))
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        findings.error(_dot(where, "annotations"), "must be a mapping of strings")
        return
    for key, parse in (
        (NETWORKS_ANNOTATION, lambda text: selection.parse_selection(text, pod_namespace=namespace)),
        (DEFAULT_NETWORK_ANNOTATION, lambda text: [selection.parse_default_network(text, namespace="kube-system")]),
    ):
        if key not in annotations:
            continue
        place = f"{where}.annotations[{key}]"
        value = annotations[key]
        if not isinstance(value, str):
            findings.error(place, "must be a string (quote it in YAML)")
            continue
        with findings.at(place):
            _parse_annotation(parse, value, key, findings, place)


def _parse_annotation(
    parse: Callable[[str], list[model.NetworkSelection]], value: str, key: str, findings: _Findings, place: str
) -> None:
    try:
        elements = json.loads(value) if any(char in value for char in '[{"') else None
    except (ValueError, RecursionError):
        elements = None

    def run(doc: Any) -> None:
        parse(value if doc is None else json.dumps(doc))

    for err in every_error(run, elements, lambda err: _element_path(err.msg.removeprefix(f"{key}: "))):
        findings.error(place, err.msg.removeprefix(f"{key}: "))


def _own_namespace(doc: dict[str, Any]) -> str:
    metadata = doc.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return namespace if isinstance(namespace, str) and namespace else "default"


def _check_cni_config(raw: dict[str, Any], findings: _Findings, path: str, *, default_name: str = "") -> None:
    plugins = raw.get("plugins") if "plugins" in raw else None
    if plugins is None and raw.get("type") in META_TYPES:
        _check_meta(raw, findings, path)
        return
    try:
        with findings.at(path):
            network = netconfs.parse_config(raw, where="config", default_name=default_name or "unnamed")
    except CniError as err:
        findings.cni_error(path, _strip_where(err, "config"))
        return
    if plugins is None:
        _check_plugin(network, 0, findings, path)
        return
    for index, plugin in enumerate(network.plugins):
        place = _dot(path, f"plugins.{index}")
        if plugin.get("type") in META_TYPES:
            entry = {"cniVersion": network.cni_version, "name": network.name, **plugin}
            _check_meta(entry, findings, place)
        else:
            _check_plugin(network, index, findings, place)


def _check_meta(entry: dict[str, Any], findings: _Findings, path: str) -> None:
    """The JSON Schema's findings (all of them), then the model's (its first), then each
    delegate as a CNI config."""
    reported = set()
    for problem in config.schema_errors(entry):
        root, at_root, rest = problem.partition("config: ")
        if not root and at_root and rest.endswith("is not valid under any of the given schemas"):
            continue  # the root anyOf (clusterNetwork or delegates): the model says it better
        where, message = _join(path, rest if not root and at_root else problem)
        findings.error(where, message)
        reported.add(where)
    loaded: list[config.MetaConf] = []
    with findings.at(path):
        errors = every_error(lambda doc: loaded.append(config.load_meta_conf(doc)), entry)
    for err in errors:
        where, message = _join(path, err.msg)
        if where not in reported:
            findings.error(where, message)
    if errors:
        return
    conf = loaded[0]
    if conf.cluster_network:
        return  # delegates are ignored then (MetaConf warns)
    for number, network in enumerate(conf.delegate_networks()):
        place = _dot(path, f"delegates.{number}")
        if "plugins" not in conf.delegates[number]:
            _check_plugin(network, 0, findings, place)
            continue
        for index in range(len(network.plugins)):
            _check_plugin(network, index, findings, _dot(place, f"plugins.{index}"))


def _check_plugin(network: Conflist, index: int, findings: _Findings, path: str) -> None:
    """A built-in delegate's and its IPAM's own config checks (others' plugins: none)."""
    plugin = network.plugins[index]
    _check_keys(plugin, findings, path)
    stdin = json.dumps(cni_config.plugin_config(plugin, name=network.name, cni_version=network.version)).encode()
    checks = [_builtin_check(str(plugin.get("type", "")))]
    ipam = plugin.get("ipam")
    if isinstance(ipam, dict):
        checks.append(_builtin_check(str(ipam.get("type", ""))))
    for run_check in checks:
        if run_check is None:
            continue
        with findings.at(path):
            errors = every_error(functools.partial(_run_on, run_check), json.loads(stdin))
        for err in errors:
            findings.cni_error(path, err)


MAX_RERUNS = 64


def _run_on(check: Callable[[bytes], object], doc: Any) -> None:
    check(json.dumps(doc).encode())


def every_error(
    run: Callable[[Any], object],
    doc: Any,
    key_path: Callable[[CniError], list[str | int] | None] | None = None,
) -> list[CniError]:
    """Every error `run(doc)` finds, not only the first: after each, `run` goes again on
    `doc` without the key the error names (`key_path(err)`, by default the message's
    leading `a.0.b: `), until it passes or names no key `doc` has. A later error that
    names no key, or one at or around a dropped key, may come of the dropping: not kept."""
    found: list[CniError] = []
    dropped: list[list[str | int]] = []
    doc = copy.deepcopy(doc)
    for _ in range(MAX_RERUNS):
        try:
            run(doc)
        except CniError as err:
            steps = key_path(err) if key_path is not None else _message_path(err.msg, doc)
            if found and (not steps or any(_overlap(steps, gone) for gone in dropped)):
                break
            found.append(err)
            if not steps or not _drop(doc, steps):
                break
            dropped.append(steps)
        else:
            break
    return found


def _overlap(one: list[str | int], other: list[str | int]) -> bool:
    """True when one path is the other or lies inside it."""
    shorter = min(len(one), len(other))
    return one[:shorter] == other[:shorter]


def _message_path(message: str, doc: Any) -> list[str | int] | None:
    """The steps into `doc` of a message's leading key path (`delegates.1.type: ...`);
    keys may hold dots themselves (`cni.dev/valid-attachments`)."""
    head, sep, _ = message.partition(": ")
    if not sep:
        return None
    steps: list[str | int] = []
    node, rest = doc, head
    while rest:
        if isinstance(node, dict):
            keys = [key for key in node if isinstance(key, str) and (rest == key or rest.startswith(f"{key}."))]
            if not keys:
                return steps or None
            step: str | int = max(keys, key=len)
        elif isinstance(node, list) and rest.split(".", 1)[0].isdigit() and int(rest.split(".", 1)[0]) < len(node):
            step = int(rest.split(".", 1)[0])
        else:
            return steps or None
        steps.append(step)
        node, rest = node[step], rest[len(str(step)) + 1:]
    return steps


def _element_path(message: str) -> list[str | int] | None:
    """`element 1 ('b'): ips: ...` as the steps [1, "ips"] into the annotation's list."""
    found = _ELEMENT.match(message)
    if found is None:
        return None
    key = found.group(2).partition(": ")[0].split(".")[0]
    return [int(found.group(1)), key] if _PATHLIKE.match(key) else None


def _drop(doc: Any, steps: list[str | int]) -> bool:
    """Remove the innermost mapping key along `steps`; False when there is none to remove."""
    node, last = doc, None
    for index, step in enumerate(steps):
        if isinstance(node, dict) and isinstance(step, str) and step in node:
            last = (node, step)
        elif not (isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)):
            break
        if index < len(steps) - 1:
            node = node[step]
    if last is None:
        return False
    del last[0][last[1]]
    return True


def _check_keys(plugin: Mapping[str, Any], findings: _Findings, path: str) -> None:
    """Warn on keys a shipped delegate or its IPAM does not know, with a suggestion."""
    known = _known_keys(str(plugin.get("type", "")))
    if known is None:
        return
    kind = str(plugin.get("type"))
    for key, hint in keyhints.unknown(plugin, known):
        findings.warning(_dot(path, key), f"unknown key of {kind!r}, ignored{hint}")
    ipam = plugin.get("ipam")
    ipam_known = _known_keys(str(ipam.get("type", ""))) if isinstance(ipam, dict) else None
    if isinstance(ipam, dict) and ipam_known is not None:
        for key, hint in keyhints.unknown(ipam, ipam_known):
            findings.warning(_dot(path, f"ipam.{key}"), f"unknown key of {ipam.get('type')!r}, ignored{hint}")


def _known_keys(plugin_type: str) -> frozenset[str] | None:
    name = plugin_type.removeprefix("netplex-")
    if name == "bridge":
        from delegates.bridge import config as bridge_config

        return keyhints.CNI_PLUGIN_KEYS | keyhints.model_keys(bridge_config.BridgeConf)
    if name == "macvlan":
        from delegates.macvlan import plugin as macvlan

        return keyhints.CNI_PLUGIN_KEYS | keyhints.model_keys(macvlan.MacvlanConf)
    if name == "ipvlan":
        from delegates.ipvlan import plugin as ipvlan

        return keyhints.CNI_PLUGIN_KEYS | keyhints.model_keys(ipvlan.IpvlanConf)
    if name == "host-local":
        return keyhints.HOST_LOCAL_KEYS
    if name == "static":
        return keyhints.STATIC_KEYS
    return None


def _builtin_check(plugin_type: str) -> Callable[[bytes], object] | None:
    name = plugin_type.removeprefix("netplex-")
    if name == "bridge":
        from delegates.bridge import config as bridge_config

        return bridge_config.load
    if name == "macvlan":
        from delegates.macvlan import plugin as macvlan

        return lambda stdin: cni_config.load_conf(macvlan.MacvlanConf, stdin)
    if name == "ipvlan":
        from delegates.ipvlan import plugin as ipvlan

        return lambda stdin: cni_config.load_conf(ipvlan.IpvlanConf, stdin)
    if name == "host-local":
        from delegates.ipam import hostlocal_config

        return lambda stdin: hostlocal_config.load(stdin, skel.CmdArgs(command="ADD"))
    if name == "static":
        from delegates.ipam import static

        return lambda stdin: static.load(stdin, skel.CmdArgs(command="ADD"))
    if plugin_type == "netplex-ipam":  # the cluster IPAM: its keys, no API access
        from delegates.ipam.cluster import config as cluster_config

        return lambda stdin: cluster_config.load(stdin, skel.CmdArgs(command="ADD"))
    return None


def _parse(data: bytes, *, json_file: bool) -> list[Any]:
    if json_file:
        try:
            return [json.loads(data)]
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
    try:
        return [doc for doc in yaml.load_all(data, Loader=_LOADER) if doc is not None]
    except yaml.MarkedYAMLError as exc:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise ValueError(f"not valid YAML{line}: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from exc


def _strip_where(err: CniError, where: str) -> CniError:
    return CniError(err.code, err.msg.removeprefix(f"{where}: "), err.details)


def _join(path: str, message: str) -> tuple[str, str]:
    """Move a message's leading dotted keys (`plugins.0.type: missing`) into the path."""
    while True:
        head, sep, rest = message.partition(": ")
        if not sep or not _PATHLIKE.match(head) or head in ("config",):
            return path, message
        if path.endswith(f"[{head}]"):  # the annotation's own name, already in the path
            message = rest
            continue
        path, message = _dot(path, head), rest


def _dot(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
