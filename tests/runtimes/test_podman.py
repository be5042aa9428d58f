"""netplex under podman 4.3's CNI backend, as a user runs it: `podman run --network
<netplex conflist>`, network connect/disconnect, network reload, restart, stop and rm.

What podman hands the plugin, checked against what it actually passed (the recording
wrapper): only K8S_POD_NAME (plus IP=/MAC= for a static address), no namespace, VERSION
on every plugin of every conflist with dummy values, lowerCamel capability keys, and a
DEL for every way a container leaves a network. Podman's containers are looked up in the
local manifest directory by name in namespace `default`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tools.runtimes import lanes, networks, node

pytestmark = pytest.mark.runtimes

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
HOST_PORT = 18080  # bound by podman inside the lane's node namespace only


def _addresses(lane: lanes.PodmanLane, container: str) -> dict[str, str]:
    """ifname -> IPv4 address/len, as the container itself sees them."""
    out = lane.podman.run("exec", container, "/bin/busybox", "ip", "-o", "-4", "addr").stdout
    return {line.split()[1]: line.split()[3] for line in out.splitlines()}


def _in(network: networks.Network, address: str) -> bool:
    return address.startswith(network.prefix)


def _container_id(lane: lanes.PodmanLane, name: str) -> str:
    return lane.podman.run("inspect", "--format", "{{.Id}}", name).stdout.strip()


def _assert_left_nothing(lane: lanes.PodmanLane, container_id: str, links_before: dict[str, str]) -> None:
    assert lane.cache_files(container_id) == []
    assert lane.reservations(container_id) == []
    assert set(lane.node_links()) <= set(links_before) | lane.networks.bridges()


@pytest.fixture(scope="module")
def running(podman_lane: lanes.PodmanLane) -> Iterator[str]:
    """A long-running container on the netplex network (no Pod manifest), publishing a
    port on the node's 127.0.0.1; its name."""
    lane = podman_lane
    name = f"long-{uuid.uuid4().hex[:6]}"
    lane.podman.run(
        "run", "-d", "--name", name, "--network", lane.network, "--publish", f"127.0.0.1:{HOST_PORT}:80",
        *lane.podman.container_flags(), lane.image,
    )
    try:
        yield name
    finally:
        lane.podman.run("rm", "--force", "--time", "0", name, check=False)


def test_run_gets_the_cluster_network_defaults_and_the_pods_selection(podman_lane: lanes.PodmanLane) -> None:
    lane = podman_lane
    nets = lane.networks
    name = f"run-{uuid.uuid4().hex[:6]}"
    networks.write_pod(nets, name=name, annotations={NETWORKS_ANNOTATION: "blue"})
    links_before = lane.node_links()
    done = lane.podman.run(
        "run", "--rm", "--name", name, "--network", lane.network, *lane.podman.container_flags(),
        lane.image, "/bin/busybox", "ip", "-o", "-4", "addr",
    )
    seen = {line.split()[1]: line.split()[3] for line in done.stdout.splitlines()}
    assert set(seen) == {"lo", "eth0", "net1", "net2"}
    assert _in(nets.by_name("rt-cluster"), seen["eth0"])
    assert _in(nets.by_name("rt-extra"), seen["net1"])  # defaultNetworks
    assert _in(nets.by_name("blue"), seen["net2"])  # the Pod manifest's selection

    add = next(call for call in lane.calls() if call.command == "ADD" and call.env["CNI_ARGS"].endswith(name))
    lane.wait_for_calls(add.container_id, command="DEL")
    status = json.loads(networks.status_file(nets, pod=name).read_text())
    assert [(entry["name"], entry["interface"]) for entry in status] == [
        ("kube-system/rt-cluster", "eth0"), ("kube-system/rt-extra", "net1"), ("default/blue", "net2"),
    ]
    _assert_left_nothing(lane, add.container_id, links_before)


def test_podman_passes_only_the_pod_name_and_the_namespace_defaults(
    podman_lane: lanes.PodmanLane, running: str
) -> None:
    container_id = _container_id(podman_lane, running)
    add = next(call for call in podman_lane.calls(container_id) if call.command == "ADD")
    assert add.env["CNI_ARGS"] == f"IgnoreUnknown=1;K8S_POD_NAME={running}"
    assert add.returncode == 0 and add.answer is not None and add.answer["cniVersion"] == networks.CNI_VERSION
    status = json.loads(networks.status_file(podman_lane.networks, pod=running, namespace="default").read_text())
    assert [entry["interface"] for entry in status] == ["eth0", "net1"]


def test_version_storms_with_dummy_values_always_succeed(podman_lane: lanes.PodmanLane, running: str) -> None:
    versions = [call for call in podman_lane.calls() if call.command == "VERSION"]
    assert versions, "podman ran no VERSION"
    for call in versions:
        assert (call.env["CNI_NETNS"], call.env["CNI_PATH"], call.env["CNI_CONTAINERID"]) == ("dummy", "dummy", "")
        assert call.returncode == 0 and call.stderr == ""
        answer = call.answer
        assert answer is not None and networks.CNI_VERSION in answer["supportedVersions"]
        assert call.stdin is not None and answer["cniVersion"] == call.stdin["cniVersion"]


def test_static_ip_and_mac_reach_the_cluster_network(podman_lane: lanes.PodmanLane) -> None:
    lane = podman_lane
    cluster = lane.networks.by_name("rt-cluster")
    address, mac = f"{cluster.prefix}77", "02:00:c6:12:14:4d"
    name = f"static-{uuid.uuid4().hex[:6]}"
    links_before = lane.node_links()
    done = lane.podman.run(
        "run", "--rm", "--name", name, "--network", lane.network, "--ip", address, "--mac-address", mac,
        *lane.podman.container_flags(),
        lane.image, "/bin/busybox", "sh", "-c", "ip -o -4 addr show eth0; ip -o link show eth0",
    )
    assert f" {address}/24 " in done.stdout and f"link/ether {mac} " in done.stdout

    add = next(
        call for call in lane.calls() if call.command == "ADD" and f"K8S_POD_NAME={name};" in call.env["CNI_ARGS"]
    )
    args = dict(pair.split("=", 1) for pair in add.env["CNI_ARGS"].split(";"))
    assert (args["IP"], args["MAC"]) == (address, mac)
    lane.wait_for_calls(add.container_id, command="DEL")
    _assert_left_nothing(lane, add.container_id, links_before)


def test_port_mappings_reach_the_cluster_network_in_the_specs_spelling(
    podman_lane: lanes.PodmanLane, running: str
) -> None:
    container_id = _container_id(podman_lane, running)
    add = next(call for call in podman_lane.calls(container_id) if call.command == "ADD")
    assert add.stdin is not None
    given = add.stdin["runtimeConfig"]["portMappings"]
    assert given == [{"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}]
    recorded = next(record for record in podman_lane.records(container_id) if record.command == "ADD")
    assert recorded.conf["runtimeConfig"]["portMappings"] == given


def test_network_connect_and_disconnect_add_and_del_on_a_running_container(
    podman_lane: lanes.PodmanLane, running: str
) -> None:
    lane = podman_lane
    container_id = _container_id(lane, running)
    lane.podman.run("network", "connect", lane.second_network, running)
    seen = _addresses(lane, running)
    assert _in(lane.networks.by_name("rt-second"), seen["eth1"])  # podman names the second network eth1
    assert set(lane.cache_files(container_id)) == {f"{container_id}-eth0.json", f"{container_id}-eth1.json"}

    lane.podman.run("network", "disconnect", lane.second_network, running)
    assert set(_addresses(lane, running)) == {"lo", "eth0", "net1"}
    assert lane.cache_files(container_id) == [f"{container_id}-eth0.json"]
    assert not [name for name in lane.reservations(container_id) if name.startswith("rt-second/")]
    last = lane.calls(container_id)[-1]
    assert (last.command, last.env["CNI_IFNAME"], last.returncode) == ("DEL", "eth1", 0)


def test_connecting_a_second_netplex_network_keeps_the_first_networks_interfaces(
    podman_lane: lanes.PodmanLane,
) -> None:
    lane = podman_lane
    name = f"twice-{uuid.uuid4().hex[:6]}"
    networks.write_pod(lane.networks, name=name, annotations={NETWORKS_ANNOTATION: "blue"})
    lane.podman.run("run", "-d", "--name", name, "--network", lane.network, *lane.podman.container_flags(), lane.image)
    try:
        before = _addresses(lane, name)
        assert set(before) == {"lo", "eth0", "net1", "net2"}
        # The second network gets its own cluster network only: the pod's selection was
        # attached by the first, and must not be attached (or rolled back) again.
        lane.podman.run("network", "connect", lane.second_network, name)
        after = _addresses(lane, name)
        assert {ifname: after.get(ifname) for ifname in before} == before
        assert set(after) == {*before, "eth1"}
    finally:
        lane.podman.run("rm", "--force", "--time", "0", name, check=False)


@pytest.mark.xfail(
    strict=False,
    reason="podman 4.3 sometimes loses its CNI cache entry on reload and then takes CNI_IFNAME from its "
    "network status, a Go map of every sandbox interface in netplex's result: when it picks net1, the "
    "cluster network is asked for net1 and netplex refuses the clash (seen in about 1 run in 4)",
)
def test_network_reload_dels_and_adds_in_the_same_netns(podman_lane: lanes.PodmanLane, running: str) -> None:
    lane = podman_lane
    container_id = _container_id(lane, running)
    before = len(lane.calls(container_id))
    lane.podman.run("network", "reload", running)
    calls = lane.calls(container_id)[before:]
    assert [call.command for call in calls] == ["DEL", "ADD"]
    assert calls[0].env["CNI_NETNS"] == calls[1].env["CNI_NETNS"]
    assert all(call.returncode == 0 for call in calls)
    assert set(_addresses(lane, running)) == {"lo", "eth0", "net1"}
    assert len(lane.reservations(container_id)) == 2


def test_restart_dels_then_adds_in_a_new_netns(podman_lane: lanes.PodmanLane, running: str) -> None:
    lane = podman_lane
    container_id = _container_id(lane, running)
    before = len(lane.calls(container_id))
    lane.podman.run("restart", "--time", "0", running)
    calls = lane.calls(container_id)[before:]
    assert [call.command for call in calls] == ["DEL", "ADD"]
    assert calls[0].env["CNI_NETNS"] != calls[1].env["CNI_NETNS"]
    assert all(call.returncode == 0 for call in calls)
    assert set(_addresses(lane, running)) == {"lo", "eth0", "net1"}
    assert len(lane.reservations(container_id)) == 2  # nothing leaked from the first netns


def test_stop_and_rm_leave_nothing(podman_lane: lanes.PodmanLane) -> None:
    lane = podman_lane
    links_before = lane.node_links()
    name = f"stop-{uuid.uuid4().hex[:6]}"
    lane.podman.run("run", "-d", "--name", name, "--network", lane.network, *lane.podman.container_flags(), lane.image)
    container_id = _container_id(lane, name)
    netns = lane.podman.run("inspect", "--format", "{{.NetworkSettings.SandboxKey}}", name).stdout.strip()
    assert node.netns_addresses(netns).keys() == {"lo", "eth0", "net1"}
    lane.podman.run("stop", "--time", "0", name)
    lane.wait_for_calls(container_id, command="DEL")
    lane.podman.run("rm", name)
    assert [call.command for call in lane.calls(container_id)] == ["ADD", "DEL"]
    _assert_left_nothing(lane, container_id, links_before)
