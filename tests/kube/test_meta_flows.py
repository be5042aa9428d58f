"""The meta-plugin's ADD flow end to end: the real `netplex` executable (in every mode, see
tests/kube/runners.py) against the API double over HTTP, with the kernel's view of the
pod namespaces, host-local's files and netplex's cache files as the judges."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.kube.conftest import MetaScene, ScenePod
from tests.kube.runners import Runner

pytestmark = pytest.mark.netns

NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"
CRI_ANNOTATIONS = "io.kubernetes.cri.pod-annotations"
STATUS_KEYS = {"name", "interface", "ips", "mac", "mtu", "default", "dns", "gateway", "device-info"}


@pytest.fixture
def nets(scene: MetaScene) -> MetaScene:
    """The scene with two bridge networks in `default`: blue (10.92/24), green (10.93/24)."""
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    scene.add_nad("default", "green", scene.bridge("green", "npgr0", "10.93.0.0/24"))
    return scene


def added(runner: Runner, conf: dict[str, Any], pod: ScenePod, **keys: Any) -> dict[str, Any]:
    answer = runner.add(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args, **keys)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    assert isinstance(answer.doc, dict)
    return answer.doc


def deleted(runner: Runner, conf: dict[str, Any], pod: ScenePod) -> None:
    answer = runner.delete(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])


def subnets(pod: ScenePod) -> dict[str, str]:
    """ifname -> the /24 its (single) address is in, e.g. {"eth0": "10.91.0"}."""
    found = {}
    for ifname, cidrs in pod.addresses().items():
        assert len(cidrs) == 1, (ifname, cidrs)
        found[ifname] = cidrs[0].rsplit(".", 1)[0]
    return found


@pytest.mark.parametrize(
    "annotation",
    [
        "blue, default/green@gr0",
        json.dumps([{"name": "blue"}, {"name": "green", "namespace": "default", "interface": "gr0"}]),
    ],
    ids=["comma-form", "json-form"],
)
def test_add_attaches_every_selected_network_and_del_removes_them(
    runner: Runner, nets: MetaScene, annotation: str
) -> None:
    pod = nets.pod("web", annotations={NETWORKS: annotation})
    conf = nets.conf()
    result = added(runner, conf, pod)
    assert subnets(pod) == {"eth0": "10.91.0", "net1": "10.92.0", "gr0": "10.93.0"}
    sandbox = [iface["name"] for iface in result["interfaces"] if iface.get("sandbox")]
    assert sandbox == ["eth0", "net1", "gr0"]
    assert [ip["address"] for ip in result["ips"]] == pod.addresses()["eth0"]  # the cluster network's only
    assert len(nets.reserved_ips("blue")) == len(nets.reserved_ips("green")) == 1
    assert len(nets.cache_files()) == 1
    deleted(runner, conf, pod)
    assert nets.leftovers(pod) == []


def test_network_status_is_one_patch_with_npwg_fields(runner: Runner, nets: MetaScene) -> None:
    pod = nets.pod("web", annotations={NETWORKS: "blue"})
    nets.api.clear_requests()
    added(runner, nets.conf(), pod)
    patches = [r for r in nets.api.requests if r.method == "PATCH"]
    assert [(r.path, r.content_type) for r in patches] == [
        ("/api/v1/namespaces/default/pods/web/status", "application/merge-patch+json")
    ]
    assert patches[0].json()["metadata"]["uid"] == pod.uid  # a precondition: never the wrong pod
    status = nets.network_status(pod)
    links, addresses = pod.links(), pod.addresses()
    assert [entry["name"] for entry in status] == ["kube-system/cluster", "default/blue"]
    for entry, ifname, default in zip(status, ("eth0", "net1"), (True, False), strict=True):
        assert set(entry) <= STATUS_KEYS, entry
        assert entry["interface"] == ifname
        assert entry["default"] is default
        assert entry["mac"] == links[ifname]["address"]
        assert entry["ips"] == [cidr.split("/")[0] for cidr in addresses[ifname]]
        assert "<nil>" not in json.dumps(entry)
    assert [dev for _, dev in pod.default_routes()] == ["eth0"]  # no default-route key: the cluster's


def test_add_reads_the_pod_and_each_nad_once_and_patches_once(thin_runner: Runner, nets: MetaScene) -> None:
    pod = nets.pod("web", annotations={NETWORKS: "blue, blue@blue2, default/green"})
    nets.api.clear_requests()
    added(thin_runner, nets.conf(), pod)
    nad = "/apis/k8s.cni.cncf.io/v1/namespaces/{}/network-attachment-definitions/{}"
    reads_and_writes = [r for r in nets.api.requests if not r.path.endswith("/events")]  # events: test_events.py
    assert sorted((r.method, r.path) for r in reads_and_writes) == sorted([
        ("GET", "/api/v1/namespaces/default/pods/web"),
        ("GET", nad.format("kube-system", "cluster")),
        ("GET", nad.format("default", "blue")),
        ("GET", nad.format("default", "green")),
        ("PATCH", "/api/v1/namespaces/default/pods/web/status"),
    ])
    assert sorted(pod.addresses()) == ["blue2", "eth0", "net1", "net3"]


def test_containerd_pod_annotations_spare_the_pod_read(runner: Runner, nets: MetaScene) -> None:
    pod = nets.pod("web", annotations={NETWORKS: "green"})  # the API's copy: not what is used
    conf = nets.conf(runtimeConfig={CRI_ANNOTATIONS: {NETWORKS: "blue@b0"}})
    nets.api.clear_requests()
    added(runner, conf, pod)
    assert subnets(pod) == {"eth0": "10.91.0", "b0": "10.92.0"}
    assert nets.api.requests_to("GET", "/api/v1/namespaces/default/pods/web") == []
    assert [entry["name"] for entry in nets.network_status(pod)] == ["kube-system/cluster", "default/blue"]


def test_json_keys_interface_ips_mac_and_default_route_reach_the_kernel(runner: Runner, scene: MetaScene) -> None:
    blue = scene.bridge("blue", "npbl0", "10.92.0.0/24", capabilities={"ips": True, "mac": True})
    scene.add_nad("default", "blue", blue)
    element = {
        "name": "blue", "interface": "blue0", "ips": ["10.92.0.50/24"], "mac": "02:00:00:00:0a:50",
        "default-route": ["10.92.0.1"],
    }
    pod = scene.pod("web", annotations={NETWORKS: json.dumps([element])})
    conf = scene.conf()
    added(runner, conf, pod)
    assert pod.addresses()["blue0"] == ["10.92.0.50/24"]
    assert pod.links()["blue0"]["address"] == "02:00:00:00:0a:50"
    # The cluster network's default route moved to blue0, through the named gateway.
    assert pod.default_routes() == [("10.92.0.1", "blue0")]
    status = {entry["name"]: entry for entry in scene.network_status(pod)}
    assert status["default/blue"]["gateway"] == ["10.92.0.1"]
    assert "gateway" not in status["kube-system/cluster"]
    assert scene.reserved_ips("blue") == ["10.92.0.50"]
    # CHECK judges the kernel against the routes as netplex left them, not as the delegates did.
    answer = runner.check(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer == (0, None), (answer.doc, runner.last_stderr[-3000:])
    deleted(runner, conf, pod)
    assert scene.leftovers(pod) == []


def test_namespace_isolation_denies_another_namespaces_network(runner: Runner, nets: MetaScene) -> None:
    nets.add_nad("team-b", "secret", nets.bridge("secret", "npsec0", "10.96.0.0/24"))
    pod = nets.pod("web", namespace="team-a", annotations={NETWORKS: "team-b/secret"})
    answer = runner.add(
        nets.conf(namespaceIsolation=True), container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args
    )
    assert answer.code == 7, answer
    assert "namespace isolation" in answer.msg and "team-b/secret" in answer.msg
    assert nets.leftovers(pod) == []


def test_namespace_isolation_allows_own_and_global_namespaces(runner: Runner, nets: MetaScene) -> None:
    nets.add_nad("team-a", "own", nets.bridge("own", "npown0", "10.96.0.0/24"))
    pod = nets.pod("web", namespace="team-a", annotations={NETWORKS: "own, default/blue"})
    conf = nets.conf(namespaceIsolation=True)
    added(runner, conf, pod)
    assert subnets(pod) == {"eth0": "10.91.0", "net1": "10.96.0", "net2": "10.92.0"}
    deleted(runner, conf, pod)
    assert nets.leftovers(pod) == []


def test_default_networks_apply_except_in_system_namespaces(runner: Runner, scene: MetaScene) -> None:
    scene.add_nad("kube-system", "mgmt", scene.bridge("mgmt", "npmg0", "10.97.0.0/24"))
    conf = scene.conf(defaultNetworks=["mgmt"], systemNamespaces=["kube-system"])
    app = scene.pod("app")
    system = scene.pod("dns", namespace="kube-system")
    added(runner, conf, app)
    added(runner, conf, system)
    assert subnets(app) == {"eth0": "10.91.0", "net1": "10.97.0"}
    assert subnets(system) == {"eth0": "10.91.0"}
    assert [entry["name"] for entry in scene.network_status(app)] == ["kube-system/cluster", "kube-system/mgmt"]


def test_default_network_annotation_replaces_the_cluster_network(runner: Runner, nets: MetaScene) -> None:
    nets.add_nad("kube-system", "alt", nets.bridge("alt", "npalt0", "10.95.0.0/24"))
    pod = nets.pod("web", annotations={DEFAULT_NETWORK: "alt", NETWORKS: "blue"})
    nets.api.clear_requests()
    added(runner, nets.conf(), pod)
    assert subnets(pod) == {"eth0": "10.95.0", "net1": "10.92.0"}
    status = nets.network_status(pod)
    assert [(entry["name"], entry["default"]) for entry in status] == [
        ("kube-system/alt", True), ("default/blue", False)
    ]
    assert nets.reserved_ips("cluster") == []
    assert not [r for r in nets.api.requests if r.path.endswith("/cluster")]


def test_nad_without_spec_config_is_read_from_conf_dir(runner: Runner, scene: MetaScene) -> None:
    scene.add_nad("default", "ondisk")  # no spec.config: confDir has the network (NPWG 3.4.1)
    conflist = scene.conflist("ondisk", scene.bridge("ondisk", "npdsk0", "10.98.0.0/24"))
    (scene.conf_dir / "50-ondisk.conflist").write_text(json.dumps(conflist))
    pod = scene.pod("web", annotations={NETWORKS: "ondisk"})
    conf = scene.conf()
    added(runner, conf, pod)
    assert subnets(pod) == {"eth0": "10.91.0", "net1": "10.98.0"}
    deleted(runner, conf, pod)
    assert scene.leftovers(pod) == []


def test_conflist_nad_runs_its_chain_with_prev_result(runner: Runner, scene: MetaScene) -> None:
    scene.fake_plugin("fake-tuning")
    conflist = scene.conflist(
        "chained",
        scene.bridge("chained", "npch0", "10.99.0.0/24"),
        {"type": "fake-tuning", "capabilities": {"mac": True}, "sysctl": {}},
    )
    scene.add_nad("default", "chained", conflist)
    pod = scene.pod("web", annotations={NETWORKS: json.dumps([{"name": "chained", "mac": "02:00:00:00:0c:01"}])})
    conf = scene.conf()
    result = added(runner, conf, pod)
    assert subnets(pod) == {"eth0": "10.91.0", "net1": "10.99.0"}
    assert [iface["name"] for iface in result["interfaces"] if iface.get("sandbox")] == ["eth0", "net1"]
    (call,) = scene.plugin_calls("fake-tuning")
    assert call == {
        "command": "ADD", "ifname": "net1", "prevResult": True, "runtimeConfig": {"mac": "02:00:00:00:0c:01"}
    }
    deleted(runner, conf, pod)
    assert [c["command"] for c in scene.plugin_calls("fake-tuning")] == ["ADD", "DEL"]
    assert scene.leftovers(pod) == []


def test_uid_mismatch_fails_and_attaches_nothing(runner: Runner, nets: MetaScene) -> None:
    pod = nets.pod("web", annotations={NETWORKS: "blue"})
    stale = pod.cni_args.replace(pod.uid, "00000000-0000-0000-0000-000000000000")
    answer = runner.add(nets.conf(), container_id=pod.container_id, netns=pod.netns, cni_args=stale)
    assert answer.code == 3, answer
    assert "UID" in answer.msg and "default/web" in answer.msg
    assert nets.leftovers(pod) == []
