"""The two runtime lanes, set up and torn down whole: `containerd_lane()` and
`podman_lane()` are context managers yielding what a test needs (the runtime client,
the networks, the recorded calls) and leaving nothing behind, even when a test fails.

Each lane gets a work directory, a node namespace (`tools.runtimes.node`), a CNI bin dir
with the recording netplex wrapper, NADs in a local manifest directory, netplex
conflists at cniVersion 1.0.0, a cgroup parent of its own, and the busybox image.
Teardown removes pods/containers, stops the daemon, kills what is left in the lane's
cgroups, unmounts what is mounted under the work directory, removes the cgroups, the
node and the work directory.

The containerd lane runs in either of netplex's modes (`MODES`): "thin", the runtime
execs the whole plugin per call; "daemon", `netplex daemon` runs in the node beside
containerd (`tools.runtimes.netplex_daemon`), the conflist names its socket
(`daemonSocket`) and the executable the runtime calls is the stdlib-only shim. The
recording wrapper sits in front of either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tools.runtimes import cleanup, containerd, image, netplex_daemon, networks, node, plugins, podman
from tools.runtimes.podman import IMAGE as PODMAN_IMAGE

if TYPE_CHECKING:
    from tools.runtimes.cri import Cri

CONTAINERD_IMAGE = "netplex.test/busybox:1"
POD_ANNOTATIONS_CAPABILITY = "io.kubernetes.cri.pod-annotations"
NETWORK_READY_TIMEOUT = 30.0

Mode = Literal["thin", "daemon"]
MODES: tuple[Mode, ...] = ("thin", "daemon")


@dataclasses.dataclass
class Lane:
    """What both lanes share: directories, node, networks, and the call records."""

    tag: str
    workdir: Path
    node: node.Node
    networks: networks.Networks
    cgroup_parent: str

    @property
    def bin_dir(self) -> Path:
        return self.workdir / "bin"

    @property
    def calls_dir(self) -> Path:
        return self.workdir / "calls"

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "conf"

    @property
    def cni_dir(self) -> Path:
        return self.workdir / "cni"

    def calls(self, container_id: str | None = None) -> list[plugins.Call]:
        """netplex calls (oldest first), only those for `container_id` when given."""
        found = plugins.read_calls(self.calls_dir)
        return found if container_id is None else [call for call in found if call.container_id == container_id]

    def records(self, container_id: str | None = None) -> list[plugins.Record]:
        """Calls of the recorder plugin at the end of the cluster network's chain."""
        found = plugins.read_records(self.calls_dir)
        if container_id is None:
            return found
        return [record for record in found if record.env.get("CNI_CONTAINERID") == container_id]

    def cache_files(self, container_id: str = "") -> list[str]:
        """netplex's cache entries (for `container_id` when given)."""
        directory = self.cni_dir / "cache"
        names = sorted(path.name for path in directory.glob("*.json")) if directory.exists() else []
        return [name for name in names if name.startswith(container_id)]

    def reservations(self, container_id: str) -> list[str]:
        """host-local reservations held for `container_id` (a reservation file holds the ID)."""
        held = []
        for name in self.networks.reservations():
            text = (self.networks.ipam_dir / name).read_text()
            if text.split()[:1] == [container_id]:
                held.append(name)
        return held

    def node_links(self) -> dict[str, str]:
        """The node namespace's links: name -> kind ("" for none)."""
        return {
            link["ifname"]: link.get("linkinfo", {}).get("info_kind", "")
            for link in node.ip_json("-d", "-n", self.node.name, "link", "show")
        }

    def wait_for_calls(self, container_id: str, *, command: str, count: int = 1, timeout: float = 15.0) -> None:
        """Wait until `count` calls of `command` for `container_id` finished (podman's
        cleanup runs in conmon's exit command, after the podman command returned)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for call in self.calls(container_id) if call.command == command) >= count:
                return
            time.sleep(0.1)
        raise TimeoutError(f"no {command} x{count} for {container_id[:12]} within {timeout:g}s")


@dataclasses.dataclass
class ContainerdLane(Lane):
    daemon: containerd.Containerd
    cri: Cri
    mode: Mode = "thin"
    netplexd: netplex_daemon.NetplexDaemon | None = None  # daemon mode only
    image: str = CONTAINERD_IMAGE


@dataclasses.dataclass
class PodmanLane(Lane):
    podman: podman.Podman
    network: str  # the netplex conflist with the cluster network and defaultNetworks
    second_network: str  # another netplex conflist: one cluster network, for connect
    image: str = PODMAN_IMAGE


@contextlib.contextmanager
def containerd_lane(mode: Mode = "thin") -> Iterator[ContainerdLane]:
    """A private containerd in its node, the CRI socket open, NetworkReady reached; in
    daemon mode, `netplex daemon` ready in the same node before containerd starts, and
    stopped (SIGTERM, socket gone) after every pod was removed.

    Networks: kube-system/rt-cluster (the cluster network, chained with the recorder),
    default/blue, red, green. The conflist declares the pod-annotations capability and
    the CNI capabilities containerd fills (portMappings, bandwidth, dns), and asks netplex
    for every attachment's IPs in the result (`resultIPs: all`)."""
    from tools.runtimes import cri

    if mode not in MODES:
        raise ValueError(f"mode: want one of {', '.join(MODES)}, not {mode!r}")
    with _lane("cd", octet=10, cluster=("rt-cluster",), selectable=("blue", "red", "green")) as (base, stack):
        extra: dict[str, str] = {"resultIPs": "all"}
        served_by: netplex_daemon.NetplexDaemon | None = None
        if mode == "daemon":
            served_by = netplex_daemon.NetplexDaemon(base.workdir / "netplexd", base.node)
            stack.callback(served_by.stop)  # registered first: runs after the pods are gone
            served_by.start()
            extra["daemonSocket"] = str(served_by.socket)
        conflist = networks.meta_conflist(
            "netplex", base.networks, cluster_network="rt-cluster", cni_dir=base.cni_dir, bin_dir=base.bin_dir,
            capabilities={POD_ANNOTATIONS_CAPABILITY: True, "portMappings": True, "bandwidth": True, "dns": True},
            extra=extra,
        )
        networks.write_conflist(base.conf_dir, conflist)
        layout = containerd.Layout(base.workdir / "containerd")
        layout.workdir.mkdir()
        layout.config.write_text(containerd.config_text(
            layout, bin_dir=base.bin_dir, conf_dir=base.conf_dir, sandbox_image=CONTAINERD_IMAGE,
        ))
        archive = base.workdir / "image.tar"
        image.write_oci_archive(archive, name=CONTAINERD_IMAGE)
        daemon = containerd.Containerd(layout, base.node)
        stack.callback(daemon.stop)
        daemon.start()
        daemon.import_image(archive)
        client = cri.Cri(layout.socket, cgroup_parent=base.cgroup_parent)
        stack.callback(client.close)
        stack.callback(client.remove_all)
        _wait_for_network_ready(client)
        yield ContainerdLane(
            tag=base.tag, workdir=base.workdir, node=base.node, networks=base.networks,
            cgroup_parent=base.cgroup_parent, daemon=daemon, cri=client, mode=mode, netplexd=served_by,
        )


@contextlib.contextmanager
def podman_lane() -> Iterator[PodmanLane]:
    """A private podman (CNI backend) running in its node, with the image imported.

    Networks: kube-system/rt-cluster (chained with the recorder) and rt-extra behind the
    conflist `nprt-<tag>-a` (clusterNetwork + defaultNetworks, capability portMappings);
    kube-system/rt-second behind `nprt-<tag>-b`; default/blue for Pod manifests to select."""
    with _lane(
        "pm", octet=20, cluster=("rt-cluster", "rt-extra", "rt-second"), selectable=("blue",)
    ) as (base, stack):
        first, second = f"nprt-{base.tag}-a", f"nprt-{base.tag}-b"
        networks.write_conflist(base.conf_dir, networks.meta_conflist(
            first, base.networks, cluster_network="rt-cluster", default_networks=("rt-extra",),
            cni_dir=base.cni_dir, bin_dir=base.bin_dir, capabilities={"portMappings": True},
        ))
        networks.write_conflist(base.conf_dir, networks.meta_conflist(
            second, base.networks, cluster_network="rt-second", cni_dir=base.cni_dir, bin_dir=base.bin_dir,
        ))
        layout = podman.Layout(base.workdir / "podman")
        podman.write_config(layout, bin_dir=base.bin_dir, conf_dir=base.conf_dir)
        runner = podman.Podman(layout, base.node, cgroup_parent=base.cgroup_parent)
        stack.callback(runner.remove_all)
        rootfs = image.write_rootfs(base.workdir / "rootfs.tar")
        runner.import_image(rootfs)
        yield PodmanLane(
            tag=base.tag, workdir=base.workdir, node=base.node, networks=base.networks,
            cgroup_parent=base.cgroup_parent, podman=runner, network=first, second_network=second,
        )


@contextlib.contextmanager
def _lane(
    kind: str, *, octet: int, cluster: tuple[str, ...], selectable: tuple[str, ...]
) -> Iterator[tuple[Lane, contextlib.ExitStack]]:
    """The shared part: work dir, node, bin dir, networks; teardown in reverse."""
    tag = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix=f"nprt-{kind}-{tag}-"))
    cgroup_parent = f"/nprt-{kind}-{tag}"
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        stack.callback(cleanup.remove_cgroups, cgroup_parent)
        stack.callback(cleanup.unmount_under, workdir)
        stack.callback(_kill_leftovers, cgroup_parent, workdir)
        the_node = node.create(f"nprt-{kind}")
        stack.callback(node.remove, the_node)
        plugins.write_bin_dir(workdir / "bin", calls_dir=workdir / "calls")
        planned = networks.plan(tag, workdir, octet=octet, cluster=cluster, selectable=selectable)
        networks.write_manifests(planned)
        base = Lane(tag=tag, workdir=workdir, node=the_node, networks=planned, cgroup_parent=cgroup_parent)
        yield base, stack


def _kill_leftovers(cgroup_parent: str, workdir: Path) -> None:
    """Processes the lane started that outlived their runtime (shims, conmon, pause)."""
    cleanup.kill(cleanup.cgroup_pids(cgroup_parent) | cleanup.pids_naming(str(workdir)))


def _wait_for_network_ready(client: Cri) -> None:
    deadline = time.monotonic() + NETWORK_READY_TIMEOUT
    conditions: dict[str, bool] = {}
    while time.monotonic() < deadline:
        conditions = client.conditions()
        if conditions.get("RuntimeReady") and conditions.get("NetworkReady"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"containerd not ready within {NETWORK_READY_TIMEOUT:g}s: {json.dumps(conditions)}")
