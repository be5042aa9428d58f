"""NPWG Device Information spec v1.1 files, and the `device-info` network-status carries.

A device plugin writes `<dir>/dp/<resource>-<deviceID>-device.json` (the resource's "/"
as "-") for each device it hands out. For each network that got a device, netplex
copies that file to `<dir>/cni/<network>-<containerID>-<ifname>-device.json` (the
network's "/" as "-") and hands the delegate that path as `CNIDeviceInfoFile`, as Multus
does; the delegate may rewrite it (SR-IOV CNI adds what it learned). After the ADD, that
file is the attachment's `device-info` in network-status; DEL removes it.

Without any file, a device ID that is a PCI address still gets a minimal device-info
(`{"type": "pci", "version": "1.1.0", "pci": {"pci-address": ...}}`), true by
construction; anything else gets none. Files are written atomically; a file that is not
a JSON object is ignored with a warning. Names are built from validated parts only."""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

from cni import store

log = logging.getLogger(__name__)

DEFAULT_DIR = "/var/run/k8s.cni.cncf.io/devinfo"
SPEC_VERSION = "1.1.0"
MAX_FILE_BYTES = 64 * 1024
PCI_ADDRESS = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+=-]{0,252}$")


def safe_part(value: str) -> bool:
    """True when `value` (a device ID, a resource or network with "/" made "-") can be part
    of a file name: no "/", no "..", no NUL, not hidden."""
    return bool(_SAFE.match(value)) and ".." not in value


def dp_path(directory: str, resource: str, device_id: str) -> str | None:
    """The device plugin's file for one device, or None when the names are not file-safe."""
    name = resource.replace("/", "-")
    if not (safe_part(name) and safe_part(device_id)):
        return None
    return os.path.join(directory, "dp", f"{name}-{device_id}-device.json")


def cni_path(directory: str, network: str, container_id: str, ifname: str) -> str | None:
    """The file netplex hands the delegate for one attachment (None when not file-safe)."""
    name = network.replace("/", "-")
    if not (safe_part(name) and safe_part(container_id) and safe_part(ifname)):
        return None
    return os.path.join(directory, "cni", f"{name}-{container_id}-{ifname}-device.json")


def read(path: str) -> dict[str, Any] | None:
    """A device-info file as a JSON object; None when it is missing or unusable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read device-info file %s: %s", path, exc.strerror or exc)
        return None
    try:
        doc = json.loads(data) if len(data) <= MAX_FILE_BYTES else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        log.warning("device-info file %s is not a JSON object of at most %d bytes; ignored", path, MAX_FILE_BYTES)
        return None
    return doc


def prepare(directory: str, *, resource: str, device_id: str, target: str) -> None:
    """Put the device plugin's file for `device_id` (when it wrote one) at `target` for the
    delegate; a stale file of an earlier sandbox at `target` goes either way."""
    source = dp_path(directory, resource, device_id) if resource else None
    info = read(source) if source else None
    try:
        if info is None:
            store.remove(target)
        else:
            store.atomic_write(target, json.dumps(info, indent=2).encode(), mode=0o644, sync=store.Sync.FILE)
    except OSError as exc:
        log.warning("cannot write device-info file %s: %s", target, exc.strerror or exc)


def for_status(path: str | None, device_id: str) -> dict[str, Any] | None:
    """The attachment's `device-info` after its ADD: the file, else a minimal PCI one."""
    info = read(path) if path else None
    if info is not None:
        return info
    if PCI_ADDRESS.match(device_id):
        return {"type": "pci", "version": SPEC_VERSION, "pci": {"pci-address": device_id.lower()}}
    return None


def remove(path: str) -> None:
    try:
        store.remove(path)
    except OSError as exc:
        log.warning("cannot remove device-info file %s: %s", path, exc.strerror or exc)
