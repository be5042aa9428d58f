"""The node's paths as a daemon in a container sees them.

A container runtime hands the plugin the pod's network namespace as a node path
(`/var/run/netns/cni-…`, `/run/netns/…`). A daemon in a pod sees that path itself when the
DaemonSet mounts the directory at the same place (with HostToContainer propagation, so
namespaces made after the daemon started appear too). When it does not, the daemon config's
`hostRoot` names where the node's `/` is mounted, and the path is looked up there, with
symlinks resolved as the node resolves them: `/var/run` is a link to `/run` on most
nodes, and an absolute link must lead back into the host root, not into the container.

The same holds for the readiness indicator file of the config (`/run/flannel/subnet.env`:
a node path the primary CNI writes), which the daemon checks before every ADD.

Standard library only; no netplex imports."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

MAX_LINKS = 40  # as the kernel's MAXSYMLINKS


def inside(root: str, node_path: str) -> str | None:
    """Where `node_path` is under `root` (the node's `/` as mounted here), following
    symlinks inside the root; None when it does not exist there or loops."""
    pending = [part for part in node_path.split("/") if part not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            links += 1
            if links > MAX_LINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending[:0] = [piece for piece in target.split("/") if piece not in ("", ".")]
            continue
        resolved.append(part)
    found = os.path.join(root, *resolved)
    return found if os.path.lexists(found) else None


def container_path(node_path: str, host_root: str) -> str:
    """`node_path` as this process can open it: itself when it exists here (or no host
    root is configured), else its place under `host_root`, else unchanged (the caller
    reports it missing, as it would have)."""
    if not node_path or not host_root or os.path.lexists(node_path):
        return node_path
    return inside(host_root, node_path) or node_path


READINESS_KEYS = ("readinessindicatorfile", "readinessIndicatorFile")


def with_readiness_file(config: Mapping[str, Any], host_root: str) -> dict[str, Any]:
    """A request's config with its readiness indicator file as this process can see it."""
    translated = dict(config)
    for key in READINESS_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value and host_root:
            translated[key] = container_path(value, host_root)
    return translated


def with_netns(env: Mapping[str, str], host_root: str) -> dict[str, str]:
    """A CNI request's environment with CNI_NETNS as this process can open it."""
    translated = dict(env)
    netns = env.get("CNI_NETNS", "")
    if netns and host_root:
        translated["CNI_NETNS"] = container_path(netns, host_root)
    return translated
