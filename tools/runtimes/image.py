"""The runtime lanes' one container image, made offline from Debian's static busybox.

`write_rootfs` writes a root filesystem tar (busybox plus a few applet links and the
directories a runtime bind-mounts into), which `podman import` turns into an image.
`write_oci_archive` wraps the same tar as the single layer of an OCI image layout tarball
(`oci-layout`, `index.json`, `blobs/sha256/...`), which `ctr images import` loads; its
index names the image (`io.containerd.image.name`), so containerd can use it as the pod
sandbox ("pause") image and for the pod's containers. Both run `busybox sleep inf` unless
told otherwise: a pause process needs to do nothing but live.

Standard library only (tarfile, json, hashlib); nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "sleep", "ip", "cat", "ls", "true", "hostname")
DIRECTORIES = ("bin", "dev", "etc", "proc", "sys", "tmp", "run", "root", "var")
COMMAND = ("/bin/busybox", "sleep", "inf")
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
# A fixed time for every tar member: the same busybox always makes the same image digest.
EPOCH = 0


def write_rootfs(path: Path, *, busybox: str = BUSYBOX) -> Path:
    """A rootfs tar with `busybox` as /bin/busybox; returns `path`."""
    path.write_bytes(rootfs_bytes(busybox=busybox))
    return path


def rootfs_bytes(*, busybox: str = BUSYBOX) -> bytes:
    """The rootfs tar in memory (deterministic for one busybox binary)."""
    if not os.path.isfile(busybox):
        raise FileNotFoundError(f"{busybox} not found: install Debian's busybox-static")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in DIRECTORIES:
            tar.addfile(_member(directory, tarfile.DIRTYPE, mode=0o1777 if directory == "tmp" else 0o755))
        data = Path(busybox).read_bytes()
        binary = _member("bin/busybox", tarfile.REGTYPE, mode=0o755)
        binary.size = len(data)
        tar.addfile(binary, io.BytesIO(data))
        for applet in APPLETS:
            link = _member(f"bin/{applet}", tarfile.SYMTYPE, mode=0o777)
            link.linkname = "busybox"
            tar.addfile(link)
    return buffer.getvalue()


def write_oci_archive(
    path: Path, *, name: str, command: Sequence[str] = COMMAND, busybox: str = BUSYBOX
) -> str:
    """An OCI image layout tarball of the busybox rootfs, named `name` (a full reference,
    such as `netplex.test/busybox:1`); returns the manifest digest."""
    layer = rootfs_bytes(busybox=busybox)
    layer_digest = _digest(layer)
    config = _json_bytes({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": list(command), "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "netplex tools.runtimes.image"}],
    })
    manifest = _json_bytes({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": len(layer)}],
    })
    manifest_digest = _digest(manifest)
    index = _json_bytes({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": manifest_digest,
            "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": name.rpartition(":")[2],
            },
        }],
    })
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_file(tar, "oci-layout", _json_bytes({"imageLayoutVersion": "1.0.0"}))
        _add_file(tar, "index.json", index)
        tar.addfile(_member("blobs", tarfile.DIRTYPE, mode=0o755))
        tar.addfile(_member("blobs/sha256", tarfile.DIRTYPE, mode=0o755))
        for blob in (layer, config, manifest):
            _add_file(tar, f"blobs/sha256/{_digest(blob).removeprefix('sha256:')}", blob)
    return manifest_digest


def _member(name: str, kind: bytes, *, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _member(name, tarfile.REGTYPE, mode=0o644)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _json_bytes(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
