"""CNI network configs on disk and in NetworkAttachmentDefinitions: reading `.conf`,
`.json` and `.conflist` files from a directory (confDir, or a path the meta config names)
and turning any config text into a Conflist with the spec's keys injected (a missing
`name` gets the object's name, NPWG 3.4.2; a missing `cniVersion` gets the meta config's).

Lookup by name follows NPWG 3.4.1: a conflist whose `name` matches, then a conf whose
`name` matches (Multus also finds a file by its name without the extension; so do we,
last). A broken file is skipped with a warning, never stops the search.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import msgspec

from cni import config as cni_config
from cni.config import Conflist
from cni.errors import CniError, Code

log = logging.getLogger(__name__)

_Network = TypeVar("_Network", Conflist, dict[str, Any])

CONF_EXTENSIONS = (".conf", ".json")
LIST_EXTENSION = ".conflist"
MAX_FILE_BYTES = 1024 * 1024


def parse_config(
    raw: str | bytes | Mapping[str, Any], *, where: str, default_name: str = "", cni_version: str = ""
) -> Conflist:
    """A conf or conflist (text or parsed) as a Conflist. `default_name` fills a missing
    or empty `name`; `cni_version` a missing `cniVersion` (when neither it nor
    `cniVersions` is set). Bad JSON is error 6, a bad config error 7, both naming `where`."""
    if isinstance(raw, Mapping):
        doc = dict(raw)
    else:
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise CniError(Code.DECODING_FAILURE, f"{where}: not valid JSON", str(exc)) from exc
        if not isinstance(doc, dict):
            raise CniError(Code.DECODING_FAILURE, f"{where}: not a JSON object")
    if default_name and not doc.get("name"):
        doc["name"] = default_name
    if cni_version and not doc.get("cniVersion") and not doc.get("cniVersions"):
        doc["cniVersion"] = cni_version
    try:
        return cni_config.parse_network(doc, where=where)
    except CniError as err:
        if err.msg.startswith(where):
            raise
        raise err.prefixed(where) from err


def load_file(path: str, *, cni_version: str = "") -> Conflist:
    """One file: a `.conflist` must have `plugins`; a `.conf`/`.json` must be a single
    plugin (a conflist saved as .conf is an error, as in libcni)."""
    where = f"file {path!r}"
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"{where}: cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CniError(Code.DECODING_FAILURE, f"{where}: not valid JSON", str(exc)) from exc
    if not isinstance(doc, dict):
        raise CniError(Code.DECODING_FAILURE, f"{where}: not a JSON object")
    if path.endswith(LIST_EXTENSION):
        if "plugins" not in doc:
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: plugins: a .conflist needs a plugins list")
    elif "type" not in doc:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: type: missing (is this a .conflist?)")
    return parse_config(doc, where=where, cni_version=cni_version)


def config_files(directory: str) -> list[str]:
    """The config files of `directory`, sorted by file name (libcni's ConfFiles order)."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot list {directory!r}: {exc.strerror or exc}") from exc
    extensions = (*CONF_EXTENSIONS, LIST_EXTENSION)
    return [entry.path for entry in entries if entry.name.endswith(extensions) and entry.is_file()]


def find_by_name(
    conf_dir: str, name: str, *, cni_version: str = "", match_file_name: bool = False
) -> Conflist | None:
    """The network named `name` in `conf_dir`: a conflist, else a conf, whose JSON `name`
    matches; with `match_file_name`, else a file called `name` plus an extension (Multus's
    rule for clusterNetwork and defaultNetworks). None when there is none."""
    files = config_files(conf_dir)
    lists = [path for path in files if path.endswith(LIST_EXTENSION)]
    confs = [path for path in files if not path.endswith(LIST_EXTENSION)]
    for _path, network in _loadable(lists + confs, cni_version=cni_version):
        if network.name == name:
            return network
    if not match_file_name:
        return None
    stems = {os.path.join(conf_dir, name + extension) for extension in (LIST_EXTENSION, *CONF_EXTENSIONS)}
    for _path, network in _loadable([path for path in lists + confs if path in stems], cni_version=cni_version):
        return network
    return None


def first_in_dir(directory: str, *, cni_version: str = "") -> Conflist | None:
    """The alphabetically first loadable config in `directory` (a Multus clusterNetwork
    that names a directory means this)."""
    for _path, network in _loadable(config_files(directory), cni_version=cni_version):
        return network
    return None


def load_path(path: str, *, cni_version: str = "") -> Conflist:
    """A network named by path: a file, or a directory's first config (error 7 if none)."""
    if os.path.isdir(path):
        network = first_in_dir(path, cni_version=cni_version)
        if network is None:
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"no loadable CNI config in directory {path!r}")
        return network
    if not os.path.exists(path):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"CNI config file {path!r} does not exist")
    return load_file(path, cni_version=cni_version)


def _loadable(paths: list[str], *, cni_version: str) -> Iterator[tuple[str, Conflist]]:
    for path in paths:
        try:
            yield path, load_file(path, cni_version=cni_version)
        except CniError as err:
            log.warning("skipping CNI config: %s", err.msg)


def inject_device_id(network: _Network, device_id: str) -> _Network:
    """`deviceID` (and `pciBusID`, which host-device reads) set top-level in the
    delegate's config, where SR-IOV CNI reads it, as Multus does: in a conf, and in every
    plugin of a conflist. Takes a Conflist or a conf/conflist dict; returns a copy of the
    same kind (an empty `device_id` returns it unchanged)."""
    if not device_id:
        return network
    keys = {"deviceID": device_id, "pciBusID": device_id}
    if isinstance(network, Conflist):
        return msgspec.structs.replace(network, plugins=[{**plugin, **keys} for plugin in network.plugins])
    doc = dict(network)
    if isinstance(doc.get("plugins"), list):
        doc["plugins"] = [{**plugin, **keys} if isinstance(plugin, Mapping) else plugin for plugin in doc["plugins"]]
        return doc
    return {**doc, **keys}
