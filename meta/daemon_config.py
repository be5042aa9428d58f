"""The config file of `netplex daemon`: the meta-plugin's own keys (kubeconfig, cniDir,
binDir, clusterNetwork or delegates, namespaceIsolation, ...), which override what the
shim sends on stdin as Multus's daemon config does, plus the daemon's keys:

  socketPath      the unix socket the shim talks to (default /run/netplex/netplex.sock)
  nodeName        the node whose pods are watched (default: $NODE_NAME)
  concurrency     CNI requests served at once; more wait up to their deadline (default 8)
  metricsAddress  "host:port" for the Prometheus endpoint; empty: no metrics (default)
  hostRoot        where the node's / is mounted in the daemon's container: a netns path
                  the runtime gives that does not exist here is looked up there
                  (meta/node/hostpath.py); empty: paths are used as given (default)
  chrootDir       run the delegates that are exec'd (not built in) chrooted into this
                  directory, the node's / as mounted here, as Multus's thick daemon does;
                  empty: no chroot (default)
  hotplug         attach/detach networks when a running pod's selection changes (default true)

Where the networks come from is decided once, at start (`source_mode`): the kubeconfig
when the file names one, else the pod's service account when the daemon runs in a pod
(KUBERNETES_SERVICE_HOST is set), else the local manifest directory of each request's
config (`localNetworks`, what `netplex demo` uses)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from cni.errors import CniError
from meta import config as meta_config
from meta import multuskeys, pathrules, shim

DEFAULT_SOCKET = "/run/netplex/netplex.sock"
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 1024
NODE_NAME_ENV = "NODE_NAME"
SERVICE_HOST_ENV = "KUBERNETES_SERVICE_HOST"
MAX_CONFIG_BYTES = 1024 * 1024
NODE_VIEW_KEYS = ("hostRoot", "chrootDir")  # the daemon's own; never sent on to the meta-plugin

SourceMode = Literal["kubeconfig", "in-cluster", "local"]


class DaemonConfigError(ValueError):
    """The daemon's config file is unusable; the message names the file and key."""


@dataclasses.dataclass(frozen=True)
class DaemonConfig:
    socket_path: str
    node_name: str
    concurrency: int
    metrics_address: str
    meta: Mapping[str, Any]  # the meta-plugin keys, merged over every request's config
    host_root: str = ""
    chroot_dir: str = ""
    hotplug: bool = True  # meta/hotplug: follow selection edits on running pods

    @property
    def kubeconfig(self) -> str:
        value = self.meta.get("kubeconfig", "")
        return value if isinstance(value, str) else ""

    def source_mode(self, environ: Mapping[str, str] | None = None) -> SourceMode:
        environ = os.environ if environ is None else environ
        if self.kubeconfig:
            return "kubeconfig"
        if environ.get(SERVICE_HOST_ENV):
            return "in-cluster"
        return "local"


def load(path: str, *, environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """Read and check the daemon's config file."""
    environ = os.environ if environ is None else environ
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise DaemonConfigError(f"config {path!r}: cannot read: {exc.strerror}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise DaemonConfigError(f"config {path!r}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise DaemonConfigError(f"config {path!r}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DaemonConfigError(f"config {path!r}: not a JSON object")
    return parse(doc, environ=environ, where=f"config {path!r}")


def parse(doc: Mapping[str, Any], *, environ: Mapping[str, str], where: str = "config") -> DaemonConfig:
    try:
        doc = multuskeys.daemon_aliases(doc)  # Multus's thick keys: aliases, or refused
    except multuskeys.RefusedKey as exc:
        raise DaemonConfigError(f"{where}: {exc}") from exc
    socket_path = doc.get("socketPath", DEFAULT_SOCKET)
    if not isinstance(socket_path, str) or not socket_path.startswith("/") or "\0" in socket_path:
        raise DaemonConfigError(f"{where}: socketPath: want an absolute path")
    node_name = doc.get("nodeName") or environ.get(NODE_NAME_ENV, "")
    if not isinstance(node_name, str):
        raise DaemonConfigError(f"{where}: nodeName: want a string")
    concurrency = doc.get("concurrency", DEFAULT_CONCURRENCY)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise DaemonConfigError(f"{where}: concurrency: want an integer from 1 to {MAX_CONCURRENCY}")
    metrics_address = doc.get("metricsAddress", "")
    if not isinstance(metrics_address, str):
        raise DaemonConfigError(f"{where}: metricsAddress: want host:port")
    if metrics_address:
        from meta import metrics

        try:
            metrics.parse_address(metrics_address)
        except ValueError as exc:
            raise DaemonConfigError(f"{where}: {exc}") from exc
    node_view = {key: _directory(doc, key, where=where) for key in NODE_VIEW_KEYS}
    hotplug = doc.get("hotplug", True)
    if not isinstance(hotplug, bool):
        raise DaemonConfigError(f"{where}: hotplug: want true or false")
    meta = {key: value for key, value in doc.items() if key not in shim.DAEMON_ONLY_KEYS and key not in node_view}
    try:
        pathrules.check_config_paths(meta)
    except CniError as err:
        raise DaemonConfigError(f"{where}: {err.msg}") from err
    meta.pop("daemonSocket", None)
    meta.pop("hotplug", None)
    config = DaemonConfig(
        socket_path=socket_path, node_name=node_name, concurrency=concurrency,
        metrics_address=metrics_address, meta=meta, host_root=node_view["hostRoot"],
        chroot_dir=node_view["chrootDir"], hotplug=hotplug,
    )
    if config.source_mode(environ) != "local" and not node_name:
        raise DaemonConfigError(f"{where}: nodeName: required with Kubernetes (or set ${NODE_NAME_ENV})")
    _check_meta(meta, where=where)
    return config


def _directory(doc: Mapping[str, Any], key: str, *, where: str) -> str:
    """An optional absolute directory key (hostRoot, chrootDir): it must exist at start."""
    value = doc.get(key, "")
    if value == "":
        return ""
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise DaemonConfigError(f"{where}: {key}: want an absolute path")
    if not os.path.isdir(value):
        raise DaemonConfigError(f"{where}: {key}: {value!r} is not a directory (is the host's / mounted there?)")
    return value


def _check_meta(meta: Mapping[str, Any], *, where: str) -> None:
    """When the file carries a full meta config (a cluster network), check it now, not
    at the first pod: a typo should stop the daemon from starting."""
    if "clusterNetwork" not in meta and "delegates" not in meta:
        return
    probe = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", **meta}
    try:
        meta_config.load_meta_conf(probe)
    except CniError as err:
        raise DaemonConfigError(f"{where}: {err.msg}") from err
