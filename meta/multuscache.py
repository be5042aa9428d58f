"""Sandboxes that Multus attached before the node switched to netplex: reading Multus's
cache, so their DEL, CHECK and GC still reach every delegate, and removing it afterwards.

Multus (thin plugin, and the thick daemon alike) saves, at ADD, before any delegate runs,
`json.Marshal([]*types.DelegateNetConf)` to `<cniDir>/<containerID>` (its `cniDir`,
default `/var/lib/cni/multus`, mode 0600). Each element carries `Conf` (a
`types.NetConf`), `ConfList` (a `types.NetConfList`), `Name` (the NAD's
"namespace/name" or the config's name), `ifnameRequest`, `macRequest`, `ipRequest`,
`default-route`, `IsFilterV4Gateway`, `IsFilterV6Gateway`, `deviceID`, `resourceName`
and `Bytes`: the delegate's raw config, base64-encoded because Go encodes `[]byte` so.
Multus runs each delegate through libcni with that same `cniDir` as libcni's cache
directory, so libcni keeps each result in `<cniDir>/results/<network name>-<containerID>-
<ifname>` (kind `cniCacheV1`: base64 `config`, `cniArgs`, `capabilityArgs`, `result`).
Multus's DEL reads the list, treats element 0 as the cluster network (it gets CNI_IFNAME),
gives element i `ifnameRequest` or `net<i>`, and DELs from the last to the first with
libcni's cached result as prevResult.

netplex turns such a record into one of its own cache entries (`adopt`): every delegate
`added`, run by the binary Multus ran (`preferBinaries`), with libcni's cached result,
CNI_ARGS and capability args. DEL then runs through the ordinary path (meta.attach); a
delegate whose DEL fails stays in netplex's cache for the runtime's retry. Multus's files
go once netplex's cache holds what is left (`remove_record`, meta.multusmigrate).

No Kubernetes, no netlink here; only files under the configured directories are read.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from typing import Any

import msgspec

from cni import decode, skel, store
from cni.errors import CniError, Code
from meta import cache, netconfs

log = logging.getLogger(__name__)

DEFAULT_MULTUS_CACHE_DIR = "/var/lib/cni/multus"
LIBCNI_DEFAULT_CACHE_DIR = "/var/lib/cni"
LIBCNI_CACHE_KIND = "cniCacheV1"
MAX_RECORD_BYTES = 4 * 1024 * 1024


class MultusDelegate(msgspec.Struct, frozen=True, kw_only=True):
    """One `types.DelegateNetConf`, as `json.Marshal` writes it (Go field names where the
    struct has no json tag)."""

    conf: dict[str, Any] | None = msgspec.field(default=None, name="Conf")
    conf_list: dict[str, Any] | None = msgspec.field(default=None, name="ConfList")
    name: str = msgspec.field(default="", name="Name")
    ifname_request: str = msgspec.field(default="", name="ifnameRequest")
    mac_request: str = msgspec.field(default="", name="macRequest")
    ip_request: list[str] | None = msgspec.field(default=None, name="ipRequest")
    gateway_request: list[str] | None = msgspec.field(default=None, name="default-route")
    is_filter_v4_gateway: bool = msgspec.field(default=False, name="IsFilterV4Gateway")
    is_filter_v6_gateway: bool = msgspec.field(default=False, name="IsFilterV6Gateway")
    device_id: str = msgspec.field(default="", name="deviceID")
    resource_name: str = msgspec.field(default="", name="resourceName")
    raw: str | None = msgspec.field(default=None, name="Bytes")  # base64 of the delegate's config

    def config_bytes(self) -> bytes:
        if not self.raw:
            return b""
        try:
            return base64.b64decode(self.raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"Bytes of delegate {self.name!r} is not base64: {exc}") from exc


class LibcniCache(msgspec.Struct, frozen=True, kw_only=True):
    """libcni's `cachedInfo` (kind cniCacheV1)."""

    kind: str = ""
    container_id: str = msgspec.field(default="", name="containerId")
    if_name: str = msgspec.field(default="", name="ifName")
    network_name: str = msgspec.field(default="", name="networkName")
    netns: str = ""
    cni_args: list[list[str]] | None = msgspec.field(default=None, name="cniArgs")
    capability_args: dict[str, Any] | None = msgspec.field(default=None, name="capabilityArgs")
    result: dict[str, Any] | None = None


def record_path(directories: list[str], container_id: str) -> str | None:
    """Multus's record of `container_id` in the first directory that has one."""
    skel.validate_container_id(container_id)  # the file is named by it: no traversal
    for directory in directories:
        path = os.path.join(directory, container_id)
        if directory and os.path.isfile(path):
            return path
    return None


def result_path(directory: str, network: str, container_id: str, ifname: str) -> str:
    """libcni's cached result of one network on one interface (`getCacheFilePath`)."""
    skel.validate_network_name(network)
    skel.validate_ifname(ifname)
    return os.path.join(directory, "results", f"{network}-{container_id}-{ifname}")


def read_record(path: str) -> list[MultusDelegate]:
    """The delegates Multus saved; error 6 naming the file when it is not Multus's format."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RECORD_BYTES + 1)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot read Multus cache {path!r}: {exc.strerror}") from exc
    try:
        if len(data) > MAX_RECORD_BYTES:
            raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
        doc = json.loads(data)
        if not isinstance(doc, list) or not doc:
            raise ValueError("not a non-empty JSON list of delegates")
        return [decode.convert(MultusDelegate, item) for item in doc]
    except ValueError as exc:  # msgspec.ValidationError is one
        raise CniError(Code.DECODING_FAILURE, f"Multus cache {path!r} is not Multus's delegate list", str(exc)) from exc


def adopt(
    path: str,
    *,
    container_id: str,
    ifname: str,
    netns: str,
    cni_version: str,
    result_dirs: list[str],
    default_cni_args: str,
) -> cache.CacheEntry:
    """Multus's record as a netplex cache entry, every delegate already `added`."""
    delegates = read_record(path)
    attachments = []
    recorded_netns = ""
    for index, delegate in enumerate(delegates):
        where = f"Multus cache {path!r}: delegate {index} ({delegate.name or '?'})"
        try:
            raw = delegate.config_bytes()
            network = netconfs.parse_config(raw, where=where, cni_version=cni_version)
        except ValueError as exc:
            raise CniError(Code.DECODING_FAILURE, f"{where}: {exc}") from exc
        delegate_ifname = delegate.ifname_request or (ifname if index == 0 else f"net{index}")
        cached = _libcni_cache(result_dirs, network.name, container_id, delegate_ifname)
        cni_args = default_cni_args
        if cached is not None and cached.netns and not recorded_netns:
            recorded_netns = cached.netns
        if cached is not None and cached.cni_args:
            cni_args = ";".join(f"{pair[0]}={pair[1]}" for pair in cached.cni_args if len(pair) == 2)
        attachments.append(cache.CachedAttachment(
            network=delegate.name or network.name,
            ifname=delegate_ifname,
            conflist=network.to_doc(),
            capability_args=(cached.capability_args or {}) if cached is not None else {},
            cni_args=cni_args,
            is_cluster_network=index == 0,
            prefer_binaries=True,  # Multus exec'd them: DEL runs the same binaries when present
            state="added",
            result=cached.result if cached is not None else None,
        ))
    return cache.CacheEntry(
        container_id=container_id, ifname=ifname, netns=netns or recorded_netns, cni_version=cni_version,
        attachments=attachments,
    )


def remove_record(path: str) -> None:
    """Remove Multus's record of one sandbox (netplex's cache holds it from now on)."""
    try:
        store.remove(path)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot remove Multus cache {path!r}: {exc.strerror}") from exc


def list_records(directory: str) -> list[str]:
    """Container IDs Multus has records of in `directory` (for GC)."""
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        try:
            skel.validate_container_id(name)
        except CniError:
            continue
        if os.path.isfile(os.path.join(directory, name)):
            found.append(name)
    return found


def _libcni_cache(directories: list[str], network: str, container_id: str, ifname: str) -> LibcniCache | None:
    for directory in directories:
        try:
            doc = store.read_json(result_path(directory, network, container_id, ifname))
        except (OSError, ValueError, CniError):
            continue
        if doc is None:
            continue
        try:
            cached = decode.convert(LibcniCache, doc)
        except msgspec.ValidationError:
            continue
        if cached.kind == LIBCNI_CACHE_KIND:
            return cached
        if isinstance(doc, dict) and "cniVersion" in doc:  # libcni's legacy form: the bare result
            return LibcniCache(kind=LIBCNI_CACHE_KIND, result=doc)
    return None
