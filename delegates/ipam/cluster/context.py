"""The process's API clients and block caches, and what a daemon lends the IPAM.

In `netplex daemon` the IPAM runs in-process: the daemon's hook (`daemon_hook.start`)
calls `use_daemon(node, client)`, so every ADD uses the daemon's node name and one
shared block cache (no API read per ADD). An exec'd `netplex-ipam` builds its client
from `ipam.kubernetes.kubeconfig` (or the in-cluster service account) instead.
Must not import meta."""

from __future__ import annotations

import os
import threading

from cni.errors import CniError, Code
from delegates.ipam.cluster import config as cluster_config
from delegates.ipam.cluster.allocator import Node
from delegates.ipam.cluster.kubeapi import Client, ConfigError
from delegates.ipam.cluster.ownership import Owner

_lock = threading.Lock()
_daemon: tuple[str, Client] | None = None
_clients: dict[str, Client] = {}
_owners: dict[tuple[int, str], Owner] = {}


def use_daemon(node: str, client: Client) -> None:
    """The daemon lends its node name and API client (None-safe: `forget_daemon`)."""
    global _daemon  # noqa: PLW0603 - one daemon per process
    with _lock:
        _daemon = (node, client)


def forget_daemon() -> None:
    global _daemon  # noqa: PLW0603
    with _lock:
        _daemon = None
        _owners.clear()


def daemon_node() -> str:
    with _lock:
        return _daemon[0] if _daemon is not None else ""


def client_for(conf: cluster_config.ClusterConfig, *, required: bool = True) -> Client | None:
    """The API client for `conf`: the daemon's, else its kubeconfig's, else in-cluster."""
    with _lock:
        if _daemon is not None:
            return _daemon[1]
        key = conf.kubeconfig or "<in-cluster>"
        if key in _clients:
            return _clients[key]
    try:
        if conf.kubeconfig:
            made = Client.from_kubeconfig(conf.kubeconfig)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            made = Client.in_cluster()
        else:
            raise ConfigError("no kubeconfig given and not running in a pod")
    except (ConfigError, OSError) as exc:
        if not required:
            return None
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"ipam.kubernetes.kubeconfig: {exc}") from exc
    with _lock:
        return _clients.setdefault(key, made)


def node_for(conf: cluster_config.ClusterConfig) -> Node:
    client = client_for(conf)
    assert client is not None
    name = cluster_config.resolve_node(conf, daemon_node())
    with _lock:
        owner = _owners.setdefault((id(client), name), Owner(client, name))
    return Node(name=name, api=client, owner=owner)


def owner_of(client: Client, node: str) -> Owner:
    with _lock:
        return _owners.setdefault((id(client), node), Owner(client, node))
