"""The config file of `netplex daemon`: the meta-plugin's own keys (kubeconfig, cniDir,
binDir, clusterNetwork or delegates, namespaceIsolation, ...), which override what the
shim sends on stdin as Multus's daemon config does, plus the daemon's keys:

  socketPath      the unix socket the shim talks to (default /run/netplex/netplex.sock)
  nodeName        the node whose pods are watched (default: $NODE_NAME)
  concurrency     CNI requests served at once; more wait up to their deadline (default 8)
  metricsAddress  "host:port" for the Prometheus endpoint; empty: no metrics (default)

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
from meta import pathrules, shim

DEFAULT_SOCKET = "/run/netplex/netplex.sock"
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 1024
NODE_NAME_ENV = "NODE_NAME"
SERVICE_HOST_ENV = "KUBERNETES_SERVICE_HOST"
MAX_CONFIG_BYTES = 1024 * 1024

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
    meta = {key: value for key, value in doc.items() if key not in shim.DAEMON_ONLY_KEYS}
    try:
        pathrules.check_config_paths(meta)
    except CniError as err:
        raise DaemonConfigError(f"{where}: {err.msg}") from err
    meta.pop("daemonSocket", None)
    config = DaemonConfig(
        socket_path=socket_path, node_name=node_name, concurrency=concurrency,
        metrics_address=metrics_address, meta=meta,
    )
    if config.source_mode(environ) != "local" and not node_name:
        raise DaemonConfigError(f"{where}: nodeName: required with Kubernetes (or set ${NODE_NAME_ENV})")
    _check_meta(meta, where=where)
    return config


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
