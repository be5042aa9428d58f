"""Node roots that hold nothing, for the release tests (tests/netns/test_node_release.py).

`bare_node` (one per session: building a release copies ~180 MB) is an empty directory
R with only /proc, /sys, /dev and /run/netns bind-mounted in, no /usr, no /lib, no
Python, into which `netplex install --host-root R` put a release, its launchers and the
conflist. Everything the tests run in it runs under `chroot R` with an empty
environment. The mounts are undone lazily at the end, whatever happened."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

NETPLEX = shutil.which("netplex", path=str(Path(sys.executable).parent)) or "netplex"
IP = shutil.which("ip") or "/usr/sbin/ip"
CHROOT = shutil.which("chroot", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/chroot"
MOUNTED = ("proc", "sys", "dev", "run/netns")
SUBNETS = {"podnet": "10.181.0.0/24", "side-a": "10.182.0.0/24", "side-b": "10.183.0.0/24"}
LOCAL_NETWORKS = "/var/lib/netplex/networks"


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def unmount_all(paths: list[Path]) -> None:
    for path in reversed(paths):
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


@contextlib.contextmanager
def bind_mounts(root: Path, sources: tuple[str, ...]) -> Iterator[list[Path]]:
    """Bind each node path in `sources` at the same path under `root`; undone on exit."""
    done: list[Path] = []
    try:
        for relative in sources:
            target = root / relative
            target.mkdir(parents=True, exist_ok=True)
            mount("--bind", f"/{relative}", str(target))
            done.append(target)
            # A bind of a shared mount joins its peer group, and the lazy unmount at the
            # end would then propagate back and unmount every netns other tests made
            # meanwhile under /run/netns. As a slave it still sees new mounts, and its
            # unmount stays its own.
            mount("--make-rslave", str(target))
        yield done
    finally:
        unmount_all(done)


@dataclasses.dataclass(frozen=True)
class BareNode:
    root: Path
    scratch: Path  # outside the root: what the installer's pod has (its ConfigMap)
    install_seconds: float
    tag: str

    def inside(self, node_path: str) -> Path:
        return self.root / node_path.lstrip("/")

    def entry(self, **extra: Any) -> bytes:
        """The netplex entry of the installed conflist, as a runtime hands it over."""
        conflist = json.loads(self.inside("/etc/cni/net.d/00-netplex.conflist").read_text())
        [entry] = conflist["plugins"]
        return json.dumps({"cniVersion": conflist["cniVersion"], "name": conflist["name"], **entry, **extra}).encode()

    def release(self) -> Path:
        [release] = self.inside("/opt/netplex/releases").iterdir()
        return release


def bridge_conf(name: str, bridge: str, **extra: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0", "name": name, "type": "netplex-bridge", "bridge": bridge,
        "ipam": {"type": "netplex-host-local", "subnet": SUBNETS[name]}, **extra,
    }


def install(root: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NETPLEX, "install", "--once", f"--host-root={root}", f"--cni-bin-dir={root}/opt/cni/bin",
         f"--cni-conf-dir={root}/etc/cni/net.d", f"--lib-dir={root}/opt/netplex", "--kubeconfig-out=none", *options],
        capture_output=True, text=True, timeout=600, check=False,
    )


@pytest.fixture(scope="session")
def bare_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareNode]:
    if os.geteuid() != 0:
        pytest.skip("needs root: bind mounts and chroot")
    scratch = tmp_path_factory.mktemp("barenode")
    root = scratch / "root"
    root.mkdir()
    tag = uuid.uuid4().hex[:6]
    with bind_mounts(root, MOUNTED):
        assert sorted(os.listdir(root)) == ["dev", "proc", "run", "sys"]  # nothing else: no /usr, /lib, python
        # What the node's kubelet and primary CNI provide: the CNI directories, its config.
        (root / "opt/cni/bin").mkdir(parents=True)
        (root / "etc/cni/net.d").mkdir(parents=True)
        primary = {"cniVersion": "1.0.0", "name": "podnet", "plugins": [bridge_conf("podnet", f"npp{tag}")]}
        (root / "etc/cni/net.d/10-podnet.conflist").write_text(json.dumps(primary))
        networks = root / LOCAL_NETWORKS.lstrip("/")
        networks.mkdir(parents=True)
        nads = [
            {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
             "metadata": {"name": name, "namespace": "default"},
             "spec": {"config": json.dumps(bridge_conf(name, f"np{name[-1]}{tag}"))}}
            for name in ("side-a", "side-b")
        ]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "web", "namespace": "default", "annotations": {"k8s.v1.cni.cncf.io/networks": "side-a, side-b"}}}
        (networks / "networks.yaml").write_text(yaml.safe_dump_all([*nads, pod]))
        config = scratch / "netplex.json"  # the ConfigMap: delegates exec'd, so their launchers run too
        config.write_text(json.dumps({"builtinDelegates": False, "localNetworks": LOCAL_NETWORKS}))
        started = time.monotonic()
        answer = install(root, f"--config={config}")
        assert answer.returncode == 0, answer.stderr
        yield BareNode(root=root, scratch=scratch, install_seconds=time.monotonic() - started, tag=tag)
