"""netplex under containerd's CRI, driven as kubelet drives it (RunPodSandbox,
CreateContainer, ExecSync, StopPodSandbox, RemovePodSandbox over the CRI socket).

What containerd hands the plugin, checked against what it actually passed (the recording
wrapper) and what netplex made of it (the kernel, the recorder plugin, the local
network-status file): the four K8S_POD_* args, the pod's annotations in runtimeConfig
(so no pod read), Go-spelt capability keys, two DELs, and pod IPs taken from eth0 only.

Every test runs in both of netplex's modes (the lane fixture is parametrised): thin, where
containerd execs the whole plugin per call, and daemon, where `netplex daemon` runs in the
node and the executable containerd calls is the shim. The assertions are the same; daemon
mode adds that the daemon answered each call (its log).

grpc and the CRI stubs are imported inside the tests, once the lane fixture has found
them installed (it skips off CI and fails in CI when they are not).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tools.runtimes import lanes, networks, node
from tools.runtimes.plugins import Call

if TYPE_CHECKING:
    from tools.runtimes import cri

pytestmark = pytest.mark.runtimes

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
SELECTED = ("blue", "red", "green")
HOST_PORT = 18080


@dataclasses.dataclass(frozen=True)
class RunningPod:
    name: str
    uid: str
    sandbox_id: str
    container_id: str
    status: cri.SandboxStatus
    run_seconds: float


def _in(network: networks.Network, address: str) -> bool:
    return ipaddress.ip_address(address.split("/", maxsplit=1)[0]) in ipaddress.ip_network(network.subnet)


def _only(calls: list[Call], command: str) -> Call:
    matching = [call for call in calls if call.command == command]
    assert len(matching) == 1, [(call.command, call.env.get("CNI_NETNS")) for call in calls]
    return matching[0]


@pytest.fixture(scope="module")
def pod(containerd_lane: lanes.ContainerdLane) -> Iterator[RunningPod]:
    """A pod asking for three networks by annotation, with a port mapping, DNS and a
    bandwidth annotation for the cluster network, and one busybox container."""
    from tools.runtimes import cri  # grpc: imported once the lane fixture found it

    lane = containerd_lane
    name, uid = f"three-{uuid.uuid4().hex[:6]}", str(uuid.uuid4())
    started = time.monotonic()
    sandbox_id = lane.cri.run_pod(
        name=name, namespace="default", uid=uid,
        annotations={NETWORKS_ANNOTATION: ",".join(SELECTED), "kubernetes.io/ingress-bandwidth": "10M"},
        port_mappings=[cri.PortMapping(container_port=80, host_port=HOST_PORT)],
        dns_servers=["198.18.99.53"], dns_searches=["netplex.test"],
    )
    run_seconds = time.monotonic() - started
    try:
        container_id = lane.cri.start_container(
            sandbox_id, name="app", image=lane.image, command=["/bin/busybox", "sleep", "inf"]
        )
        yield RunningPod(
            name=name, uid=uid, sandbox_id=sandbox_id, container_id=container_id,
            status=lane.cri.sandbox_status(sandbox_id), run_seconds=run_seconds,
        )
    finally:
        lane.cri.stop_pod(sandbox_id)
        lane.cri.remove_pod(sandbox_id)


def test_sandbox_netns_has_every_network(containerd_lane: lanes.ContainerdLane, pod: RunningPod) -> None:
    nets = containerd_lane.networks
    found = node.netns_addresses(pod.status.netns)
    expected = {"eth0": nets.by_name("rt-cluster"), "net1": nets.by_name("blue"),
                "net2": nets.by_name("red"), "net3": nets.by_name("green")}
    assert set(found) == {"lo", *expected}
    for ifname, network in expected.items():
        assert len(found[ifname]) == 1 and _in(network, found[ifname][0]), (ifname, found[ifname])


def test_a_container_in_the_pod_sees_every_interface(containerd_lane: lanes.ContainerdLane, pod: RunningPod) -> None:
    code, out, err = containerd_lane.cri.exec_sync(pod.container_id, ["/bin/busybox", "ip", "-o", "-4", "addr"])
    assert code == 0, err
    seen = {line.split()[1]: line.split()[3] for line in out.splitlines()}
    assert set(seen) == {"lo", "eth0", "net1", "net2", "net3"}
    assert seen == {name: found[0] for name, found in node.netns_addresses(pod.status.netns).items()}


def test_pod_ip_is_the_cluster_networks_though_netplex_reports_every_ip(
    containerd_lane: lanes.ContainerdLane, pod: RunningPod
) -> None:
    nets = containerd_lane.networks
    assert _in(nets.by_name("rt-cluster"), pod.status.ip)
    assert pod.status.additional_ips == ()
    answer = _only(containerd_lane.calls(pod.sandbox_id), "ADD").answer
    assert answer is not None
    reported = [ip["address"] for ip in answer["ips"]]  # resultIPs "all": four networks
    assert sorted(network.name for network in nets.items if any(_in(network, ip) for ip in reported)) == sorted(
        ["rt-cluster", *SELECTED]
    )


def test_containerd_passes_pod_identity_and_annotations_so_no_pod_is_read(
    containerd_lane: lanes.ContainerdLane, pod: RunningPod
) -> None:
    add = _only(containerd_lane.calls(pod.sandbox_id), "ADD")
    args = dict(pair.split("=", 1) for pair in add.env["CNI_ARGS"].split(";"))
    assert args["K8S_POD_NAMESPACE"] == "default" and args["K8S_POD_NAME"] == pod.name
    assert args["K8S_POD_UID"] == pod.uid and args["K8S_POD_INFRA_CONTAINER_ID"] == pod.sandbox_id
    assert add.stdin is not None
    annotations = add.stdin["runtimeConfig"][lanes.POD_ANNOTATIONS_CAPABILITY]
    assert annotations[NETWORKS_ANNOTATION] == ",".join(SELECTED)
    # The local source has no manifest for this pod: the selection can only have come
    # from runtimeConfig.
    assert not list(containerd_lane.networks.directory.glob("pod-*"))


def test_capability_keys_reach_the_cluster_network_in_the_specs_spelling(
    containerd_lane: lanes.ContainerdLane, pod: RunningPod
) -> None:
    add = _only(containerd_lane.calls(pod.sandbox_id), "ADD")
    assert add.stdin is not None
    given = add.stdin["runtimeConfig"]
    assert given["portMappings"][0]["HostPort"] == HOST_PORT  # containerd writes Go field names
    recorded = [record for record in containerd_lane.records(pod.sandbox_id) if record.command == "ADD"]
    assert len(recorded) == 1
    runtime_config = recorded[0].conf["runtimeConfig"]
    assert runtime_config["portMappings"] == [
        {"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}
    ]
    assert runtime_config["dns"]["servers"] == ["198.18.99.53"]
    assert runtime_config["dns"]["searches"] == ["netplex.test"]
    assert runtime_config["bandwidth"]["ingressRate"] == 10_000_000
    assert recorded[0].env["CNI_IFNAME"] == "eth0"


def test_netplex_answers_in_the_conflists_version(containerd_lane: lanes.ContainerdLane, pod: RunningPod) -> None:
    add = _only(containerd_lane.calls(pod.sandbox_id), "ADD")
    assert add.returncode == 0 and add.answer is not None
    assert add.answer["cniVersion"] == networks.CNI_VERSION


def test_network_status_is_written_for_every_attachment(
    containerd_lane: lanes.ContainerdLane, pod: RunningPod
) -> None:
    nets = containerd_lane.networks
    status = json.loads(networks.status_file(nets, pod=pod.name).read_text())
    assert [(entry["name"], entry["interface"], entry["default"]) for entry in status] == [
        ("kube-system/rt-cluster", "eth0", True),
        ("default/blue", "net1", False),
        ("default/red", "net2", False),
        ("default/green", "net3", False),
    ]
    assert status[0]["ips"] == [pod.status.ip]


def test_netplex_calls_take_the_lanes_path(containerd_lane: lanes.ContainerdLane, pod: RunningPod) -> None:
    add = _only(containerd_lane.calls(pod.sandbox_id), "ADD")
    assert add.stdin is not None
    served_by = containerd_lane.netplexd
    if containerd_lane.mode == "thin":
        assert served_by is None and "daemonSocket" not in add.stdin
    else:
        assert served_by is not None and add.stdin["daemonSocket"] == str(served_by.socket)
        assert served_by.served(pod.sandbox_id) == ["ADD"]


def test_stop_and_remove_del_twice_and_leave_nothing(containerd_lane: lanes.ContainerdLane) -> None:
    lane = containerd_lane
    links_before = lane.node_links()
    started = time.monotonic()
    sandbox_id = lane.cri.run_pod(
        name=f"cycle-{uuid.uuid4().hex[:6]}", namespace="default", uid=str(uuid.uuid4()),
        annotations={NETWORKS_ANNOTATION: "blue"},
    )
    ran = time.monotonic()
    netns = lane.cri.sandbox_status(sandbox_id).netns
    assert lane.cache_files(sandbox_id) == [f"{sandbox_id}-eth0.json"]
    assert len(lane.reservations(sandbox_id)) == 2
    lane.cri.stop_pod(sandbox_id)
    stopped = time.monotonic()
    lane.cri.remove_pod(sandbox_id)
    removed = time.monotonic()

    calls = lane.calls(sandbox_id)
    assert [call.command for call in calls] == ["ADD", "DEL", "DEL"]
    stop_del, remove_del = calls[1], calls[2]
    assert stop_del.env["CNI_NETNS"] == netns and stop_del.stdin and "prevResult" in stop_del.stdin
    assert remove_del.env["CNI_NETNS"] == "" and remove_del.stdin and "prevResult" not in remove_del.stdin
    assert stop_del.returncode == 0 and remove_del.returncode == 0 and remove_del.stdout == ""
    # The second DEL finds nothing recorded: no delegate runs for it.
    assert [record.command for record in lane.records(sandbox_id)] == ["ADD", "DEL"]
    if lane.netplexd is not None:
        assert lane.netplexd.served(sandbox_id) == ["ADD", "DEL", "DEL"]

    assert lane.cache_files(sandbox_id) == []
    assert lane.reservations(sandbox_id) == []
    assert lane.node_links() == links_before | {b: "bridge" for b in lane.networks.bridges() if b not in links_before}
    assert sandbox_id not in lane.cri.list_sandboxes()
    print(f"containerd pod cycle ({lane.mode}): run {ran - started:.2f}s, stop {stopped - ran:.2f}s, "
          f"remove {removed - stopped:.2f}s; netplex ADD {calls[0].duration:.2f}s, "
          f"DELs {stop_del.duration:.2f}s/{remove_del.duration:.2f}s")


def test_a_missing_network_fails_run_pod_sandbox_with_netplex_error_and_leaves_nothing(
    containerd_lane: lanes.ContainerdLane,
) -> None:
    import grpc  # type: ignore[import-untyped, unused-ignore]  # types-grpcio is optional

    from tools.runtimes import cri

    lane = containerd_lane
    sandboxes_before = set(lane.cri.list_sandboxes())
    links_before = lane.node_links()
    cache_before = lane.cache_files()
    adds_before = {call.container_id for call in lane.calls() if call.command == "ADD"}
    with pytest.raises(grpc.RpcError) as failure:
        lane.cri.run_pod(
            name=f"broken-{uuid.uuid4().hex[:6]}", namespace="default", uid=str(uuid.uuid4()),
            annotations={NETWORKS_ANNOTATION: "blue,nosuch"},
        )
    assert "NetworkAttachmentDefinition default/nosuch not found" in cri.details(failure.value)

    failed = [call for call in lane.calls() if call.command == "ADD" and call.container_id not in adds_before]
    assert len(failed) == 1 and failed[0].returncode != 0
    answer = failed[0].answer
    assert answer is not None and answer["code"] == 7 and answer["cniVersion"] == networks.CNI_VERSION
    sandbox_id = failed[0].container_id
    # containerd cleans up after a failed ADD with a DEL, which must succeed.
    dels = [call for call in lane.calls(sandbox_id) if call.command == "DEL"]
    assert all(call.returncode == 0 for call in dels)
    if lane.netplexd is not None:
        assert lane.netplexd.served(sandbox_id) == ["ADD"] + ["DEL"] * len(dels)
    assert set(lane.cri.list_sandboxes()) == sandboxes_before
    assert lane.cache_files() == cache_before
    assert lane.reservations(sandbox_id) == []
    assert set(lane.node_links()) <= set(links_before) | lane.networks.bridges()
