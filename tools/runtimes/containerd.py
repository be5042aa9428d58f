"""A private containerd for the CRI lane: its config, the daemon in the lane's node
namespace, and images imported with `ctr`.

Nothing is shared with a containerd the machine may run: root, state, runc root, the
gRPC and ttrpc sockets and the netns mounts all live under the lane's work directory
(only containerd 1.6's shim sockets go to /run/containerd/s, whatever the config says).
The CRI plugin's CNI config points at the lane's bin and conf dirs with
`max_conf_num = 1`, as kubelet nodes run it. `restrict_oom_score_adj` is on because root
here lacks CAP_SYS_RESOURCE; AppArmor and SELinux are off; runc uses cgroupfs.

Standard library only (tests speak CRI through `tools.runtimes.cri`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tools.runtimes.node import Node

BINARIES = ("containerd", "ctr", "containerd-shim-runc-v2", "runc")
NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin uses
START_TIMEOUT = 30.0

_CONFIG = """version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{workdir}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{runc}"
        Root = "{workdir}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin_dir}"
    conf_dir = "{conf_dir}"
    max_conf_num = 1
"""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one private containerd keeps everything."""

    workdir: Path

    @property
    def config(self) -> Path:
        return self.workdir / "config.toml"

    @property
    def socket(self) -> Path:
        return self.workdir / "containerd.sock"

    @property
    def log(self) -> Path:
        return self.workdir / "containerd.log"

    @property
    def root(self) -> Path:
        return self.workdir / "root"

    @property
    def state(self) -> Path:
        return self.workdir / "state"


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


def config_text(layout: Layout, *, bin_dir: Path, conf_dir: Path, sandbox_image: str) -> str:
    """The containerd config (version 2) for `layout`; see the module docstring."""
    return _CONFIG.format(
        root=layout.root, state=layout.state, socket=layout.socket, workdir=layout.workdir,
        sandbox_image=sandbox_image, runc=shutil.which("runc") or "runc",
        bin_dir=bin_dir, conf_dir=conf_dir,
    )


class Containerd:
    """The daemon, started in `node`'s network namespace."""

    def __init__(self, layout: Layout, node: Node) -> None:
        self.layout = layout
        self.node = node
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = START_TIMEOUT) -> None:
        """Start containerd and wait until its socket answers `ctr version`."""
        self.layout.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.layout.log, "ab") as log:
            self._process = subprocess.Popen(
                self.node.command(["containerd", "--config", str(self.layout.config)]),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"containerd exited with {self._process.returncode}: see {self.layout.log}")
            if self.layout.socket.exists() and self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"containerd did not answer within {timeout:g}s: see {self.layout.log}")

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ctr` against this daemon, in the CRI plugin's namespace."""
        return subprocess.run(
            ["ctr", "--address", str(self.layout.socket), "--namespace", NAMESPACE, *args],
            capture_output=True, text=True, check=check, timeout=120,
        )

    def import_image(self, archive: Path) -> None:
        """Load an OCI image layout tarball (tools.runtimes.image) under its own name."""
        self.ctr("images", "import", str(archive))

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`. Pods should be removed first: shims
        outlive the daemon by design."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)  # nsenter execs containerd: same pid
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.layout.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
