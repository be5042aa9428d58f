"""What the daemon remembers of each sandbox it ADDed, for hot-plug: the request's config
(as the shim sent it, merged with the daemon's), its CNI_ARGS and CNI_PATH, and when the
ADD completed. The attachment cache holds what was attached; this holds how to attach
more. One file per (container ID, ifname), `<cniDir>/hotplug/<container ID>-<ifname>.json`
(named like the cache's files, from validated identifiers only), written atomically after
the ADD succeeded and removed by the runtime's DEL.

A record without its cache entry belongs to a sandbox the runtime deleted (perhaps by the
shim's own DEL while the daemon was down): hot-plug treats it as a tombstone and removes it."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cni import store
from meta import cachepath

DIRECTORY = "hotplug"


class SandboxRecord(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    container_id: str = Field(alias="containerID")
    ifname: str
    config: dict[str, Any]  # the meta config of the ADD, runtimeConfig included
    cni_args: str = Field("", alias="cniArgs")
    cni_path: list[str] = Field([], alias="cniPath")
    added_at: float = Field(0.0, alias="addedAt")  # wall clock: orders a pod's sandboxes


def path_for(cni_dir: str, container_id: str, ifname: str) -> str:
    cached = cachepath.path_for(cni_dir, container_id, ifname)  # validates both
    return os.path.join(cni_dir, DIRECTORY, os.path.basename(cached))


def write(cni_dir: str, record: SandboxRecord) -> None:
    store.write_json(path_for(cni_dir, record.container_id, record.ifname), record.model_dump(by_alias=True))


def remove(cni_dir: str, container_id: str, ifname: str) -> None:
    store.remove(path_for(cni_dir, container_id, ifname))


def list_records(cni_dir: str) -> list[SandboxRecord]:
    """Every readable record (an unreadable one is skipped, never fatal)."""
    directory = os.path.join(cni_dir, DIRECTORY)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            doc = store.read_json(os.path.join(directory, name))
            if doc is not None:
                found.append(SandboxRecord.model_validate(doc))
        except (OSError, ValueError, ValidationError):
            continue
    return found
