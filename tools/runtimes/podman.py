"""A private podman for the CNI-backend lane: containers.conf, storage.conf and a runner
that runs every podman command in the lane's node namespace.

Podman 4.3 (Debian bookworm) still has the CNI backend. The lane's containers.conf selects
it (`network_backend = "cni"`) with the lane's plugin and config dirs, runc (crun refuses
this machine's hybrid cgroups) through a wrapper that keeps runc's state under the work
directory, cgroupfs, file events, ulimits that fit this machine, and our own image as
the infra image (catatonit is not installed). Storage (`--root`/`--runroot`, overlay)
and podman's tmp dir are private too, so the machine's podman state is never touched.

Standard library only.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

from tools.runtimes.node import Node

BINARIES = ("podman", "conmon", "runc")
IMAGE = "localhost/netplex-test/busybox:1"
COMMAND_TIMEOUT = 120.0

_CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[network]
network_backend = "cni"
cni_plugin_dirs = ["{bin_dir}"]
network_config_dir = "{conf_dir}"
default_network = "nprt-unused"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{workdir}/events.log"
tmp_dir = "{workdir}/tmp"
volume_path = "{workdir}/volumes"
infra_image = "{image}"
stop_timeout = 1

[engine.runtimes]
runc = ["{workdir}/runtime/runc"]
"""

_STORAGE_CONF = """[storage]
driver = "overlay"
graphroot = "{workdir}/storage"
runroot = "{workdir}/run"
"""

_RUNC = """#!/bin/sh
exec {runc} --root {workdir}/runc-state "$@"
"""


@dataclasses.dataclass(frozen=True)
class Layout:
    workdir: Path

    @property
    def containers_conf(self) -> Path:
        return self.workdir / "containers.conf"

    @property
    def storage_conf(self) -> Path:
        return self.workdir / "storage.conf"

    @property
    def graphroot(self) -> Path:
        return self.workdir / "storage"

    @property
    def runroot(self) -> Path:
        return self.workdir / "run"


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


def write_config(layout: Layout, *, bin_dir: Path, conf_dir: Path) -> None:
    """containers.conf, storage.conf and the runc wrapper (see the module docstring)."""
    for directory in (layout.workdir / "tmp", layout.workdir / "runtime", layout.workdir / "runc-state"):
        directory.mkdir(parents=True, exist_ok=True)
    layout.containers_conf.write_text(
        _CONTAINERS_CONF.format(bin_dir=bin_dir, conf_dir=conf_dir, workdir=layout.workdir, image=IMAGE)
    )
    layout.storage_conf.write_text(_STORAGE_CONF.format(workdir=layout.workdir))
    runc = layout.workdir / "runtime" / "runc"
    runc.write_text(_RUNC.format(runc=shutil.which("runc") or "/usr/sbin/runc", workdir=layout.workdir))
    runc.chmod(0o755)


class Podman:
    """podman commands in `node`, with the lane's config and storage."""

    def __init__(self, layout: Layout, node: Node, *, cgroup_parent: str) -> None:
        self.layout = layout
        self.node = node
        self.cgroup_parent = cgroup_parent

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTAINERS_CONF": str(self.layout.containers_conf),
            "CONTAINERS_STORAGE_CONF": str(self.layout.storage_conf),
        }

    def command(self, *args: str) -> list[str]:
        return self.node.command([
            "podman", "--root", str(self.layout.graphroot), "--runroot", str(self.layout.runroot), *args,
        ])

    def run(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """One podman command; with `check`, a failure raises with podman's stderr."""
        done = subprocess.run(
            self.command(*args), env=self.env(), capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def container_flags(self) -> list[str]:
        """Flags for `run`/`create`: the lane's cgroup parent, so teardown finds everything."""
        return ["--cgroup-parent", self.cgroup_parent]

    def import_image(self, rootfs: Path) -> None:
        """`podman import` of a rootfs tar as IMAGE, running busybox's `sleep inf`."""
        self.run("import", "--change", 'CMD ["/bin/busybox", "sleep", "inf"]', str(rootfs), IMAGE)

    def remove_all(self) -> None:
        """Remove every container of the lane's storage, without waiting for them to stop."""
        self.run("rm", "--all", "--force", "--time", "0", check=False)
