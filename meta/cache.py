"""The attachment cache: what netplex did for one sandbox, so DEL always works.

One file per (container ID, ifname) in `cniDir`, written atomically before the first
delegate runs (every attachment `pending`) and again after each delegate's result, so a
crash mid-ADD still leaves enough for DEL. DEL reads only this file: it works with the
API server down and after the NAD was changed or deleted.

The file is `<cniDir>/cache/<container ID>-<ifname>.json` (`c1-eth0.json`), or
`<container ID>@<ifname>.json` when the ifname holds a '-': with '-' alone, container
"a-b" with ifname "c" and container "a" with ifname "b-c" would share a file. A
container ID never holds '@', and the '-' form is used only for ifnames without '-', so
no two (container ID, ifname) pairs share a name."""

from __future__ import annotations

import os
from typing import Any, Literal

import msgspec

from cni import decode, skel, store
from cni.errors import CniError, Code
from meta import cachepath

CACHE_FORMAT = 1
# pending: recorded, its delegate may have run (a crash); added: its result is recorded;
# failed: its ADD answered an error (only in memory, during the ADD's rollback).
State = Literal["pending", "added", "failed"]


class CachedAttachment(msgspec.Struct, kw_only=True):
    """One attachment as recorded (mutable: its state and result are filled in as it runs)."""

    network: str  # "namespace/name", or the cluster network's name
    ifname: str
    conflist: dict[str, Any]
    capability_args: dict[str, Any] = msgspec.field(default_factory=dict, name="capabilityArgs")
    cni_args: str = msgspec.field(default="", name="cniArgs")
    is_cluster_network: bool = msgspec.field(default=False, name="isClusterNetwork")
    # NPWG default-route gateways
    default_route: list[str] = msgspec.field(default_factory=list, name="defaultRoute")
    # The node's own cluster network (a file or `delegates`, not a NAD) runs the plugin
    # binary the node installed, when there is one, rather than netplex's built-in.
    prefer_binaries: bool = msgspec.field(default=False, name="preferBinaries")
    state: State = "pending"
    result: dict[str, Any] | None = None


class CacheEntry(msgspec.Struct, kw_only=True):
    """One invocation's cache file."""

    format: int = CACHE_FORMAT
    container_id: str = msgspec.field(name="containerID")
    ifname: str
    netns: str = ""
    pod_namespace: str = msgspec.field(default="", name="podNamespace")
    pod_name: str = msgspec.field(default="", name="podName")
    pod_uid: str = msgspec.field(default="", name="podUID")
    cni_version: str = msgspec.field(default="", name="cniVersion")
    # The interface group every link this invocation creates joins (0: none, an older
    # cache): DEL removes them in one RTM_DELLINK before the delegates' own DELs.
    interface_group: int = msgspec.field(default=0, name="interfaceGroup")
    attachments: list[CachedAttachment] = msgspec.field(default_factory=list)

    @property
    def pod(self) -> str:
        return f"{self.pod_namespace}/{self.pod_name}" if self.pod_name else self.container_id


path_for = cachepath.path_for


def other_ifnames(cni_dir: str, container_id: str, ifname: str) -> list[str]:
    """The ifnames of this sandbox's other netplex invocations (podman's `network
    connect` calls the plugin again with eth1, eth2, ...), from the cache file names."""
    skel.validate_container_id(container_id)
    directory = os.path.join(cni_dir, "cache")
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as exc:  # cniDir is a file (/dev/null), unreadable, ...
        raise CniError(Code.IO_FAILURE, f"cannot read the cache dir in cniDir {cni_dir!r}: {exc.strerror}") from exc
    found = []
    for name in names:
        stem = name.removesuffix(".json")
        for separator in ("-", "@"):
            prefix = f"{container_id}{separator}"
            if stem.startswith(prefix) and stem != f"{container_id}{separator}{ifname}":
                other = stem[len(prefix):]
                if other and path_for(cni_dir, container_id, other).endswith(f"/{name}"):
                    found.append(other)
    return sorted(found)


def write(cni_dir: str, entry: CacheEntry) -> None:
    try:
        # msgspec encodes the Struct directly (the stdlib's encoder was ~5% of a daemon ADD's
        # CPU); sorted keys, compact, as store.write_json writes; per-sandbox state: no fsync.
        data = msgspec.json.encode(entry, order="sorted")
        store.atomic_write(path_for(cni_dir, entry.container_id, entry.ifname), data, sync=store.Sync.NONE)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot write cache in cniDir {cni_dir!r}: {exc.strerror}") from exc


def read(cni_dir: str, container_id: str, ifname: str) -> CacheEntry | None:
    path = path_for(cni_dir, container_id, ifname)
    try:
        doc = store.read_json(path)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot read cache {path!r}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # not JSON (UnicodeDecodeError is a ValueError too)
        raise CniError(Code.DECODING_FAILURE, f"cache {path!r} is not valid JSON", str(exc)) from exc
    if doc is None:
        if os.path.exists(path):  # empty or cut short (a power loss): nothing recorded (cni.store)
            store.remove(path)
        return None
    try:
        entry = decode.convert(CacheEntry, doc)
    except msgspec.ValidationError as exc:
        raise CniError(Code.DECODING_FAILURE, f"cache {path!r} is not a netplex cache", str(exc)) from exc
    if (entry.container_id, entry.ifname) != (container_id, ifname):
        raise CniError(
            Code.DECODING_FAILURE,
            f"cache {path!r} records container {entry.container_id!r} ({entry.ifname}), not this one",
        )
    return entry


def remove(cni_dir: str, container_id: str, ifname: str) -> None:
    path = path_for(cni_dir, container_id, ifname)
    try:
        store.remove(path)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot remove cache {path!r}: {exc.strerror or exc}") from exc


def list_entries(cni_dir: str) -> list[CacheEntry]:
    """Every readable cache entry (unreadable files are skipped: GC must not stop on one)."""
    directory = os.path.join(cni_dir, "cache")
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot read the cache dir in cniDir {cni_dir!r}: {exc.strerror}") from exc
    entries = []
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            doc = store.read_json(os.path.join(directory, name))
            entries.append(decode.convert(CacheEntry, doc))
        except (OSError, ValueError, msgspec.ValidationError):
            continue
    return entries


def network_names(cni_dir: str) -> set[str]:
    """The delegate network names (IPAM dirs are named after them) the cache still records."""
    return {
        str(attachment.conflist.get("name", ""))
        for entry in list_entries(cni_dir)
        for attachment in entry.attachments
    }
