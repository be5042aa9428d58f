"""Which policies apply to each interface of a sandbox, as the daemon last enforced them:
one small JSON file per sandbox, `<cniDir>/policy/<container ID>.json`, written by the
engine and read by `netplex status --pod` (which needs no daemon to answer).

Standard library and cni.store only: the status command imports this."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence

from cni import skel, store

DIRECTORY = "policy"


def path_for(cni_dir: str, container_id: str) -> str:
    skel.validate_container_id(container_id)
    return os.path.join(cni_dir, DIRECTORY, f"{container_id}.json")


def write(cni_dir: str, container_id: str, policies: Mapping[str, Sequence[str]]) -> None:
    doc = {ifname: list(keys) for ifname, keys in policies.items()}
    store.write_json(path_for(cni_dir, container_id), doc, sync=store.Sync.NONE)  # informational


def read(cni_dir: str, container_id: str) -> dict[str, list[str]]:
    """ifname -> policy keys ("namespace/name"); empty when none apply (or no daemon)."""
    try:
        doc = store.read_json(path_for(cni_dir, container_id))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {str(k): [str(x) for x in v] for k, v in doc.items() if isinstance(v, list)}


def remove(cni_dir: str, container_id: str) -> None:
    with contextlib.suppress(OSError):
        store.remove(path_for(cni_dir, container_id))


def recorded(cni_dir: str) -> list[str]:
    """The container IDs that have a file."""
    try:
        names = os.listdir(os.path.join(cni_dir, DIRECTORY))
    except FileNotFoundError:
        return []
    return sorted(name.removesuffix(".json") for name in names if name.endswith(".json") and not name.startswith("."))


def rows(cni_dir: str, container_ids: Sequence[str]) -> list[tuple[str, str, str]]:
    """`netplex status --pod`'s policy table: one row per interface some policy selects
    (nothing at all when none does)."""
    found: list[tuple[str, str, str]] = [("CONTAINER", "IFNAME", "POLICIES")]
    for container_id in container_ids:
        for ifname, keys in sorted(read(cni_dir, container_id).items()):
            found.append((container_id[:12], ifname, ",".join(keys)))
    return found if len(found) > 1 else []
