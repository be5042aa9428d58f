"""The meta-plugin after ADD: DEL from the cache alone (API server down, NAD deleted,
netns gone, twice, containerd's second DEL without a netns), CHECK of every attachment,
CNI 1.1 GC with `cni.dev/valid-attachments`, and STATUS."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.kube.conftest import MetaScene, ScenePod
from tests.kube.runners import Runner
from tests.netns.conftest import ns_name

pytestmark = pytest.mark.netns

NETWORKS = "k8s.v1.cni.cncf.io/networks"


@pytest.fixture
def attached(runner: Runner, scene: MetaScene) -> tuple[ScenePod, dict[str, Any]]:
    """A pod with the cluster network and blue (net1), added; returns (pod, conf)."""
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    pod = scene.pod("web", annotations={NETWORKS: "blue"})
    conf = scene.conf()
    answer = runner.add(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    assert sorted(pod.addresses()) == ["eth0", "net1"]
    assert scene.node_veths() and scene.all_reserved_ips() and scene.cache_files()
    scene.api.clear_requests()
    return pod, conf


def call(runner: Runner, command: str, conf: dict[str, Any], pod: ScenePod, *, netns: str | None = None) -> Any:
    return runner.call(
        command, conf, container_id=pod.container_id, netns=pod.netns if netns is None else netns,
        ifname="eth0", cni_args=pod.cni_args,
    )


def test_del_works_with_the_api_server_down(
    runner: Runner, scene: MetaScene, attached: tuple[ScenePod, dict[str, Any]]
) -> None:
    pod, conf = attached
    scene.stop_api()
    answer = call(runner, "DEL", conf, pod)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    assert scene.leftovers(pod) == []


def test_del_works_after_the_nad_was_deleted(
    runner: Runner, scene: MetaScene, attached: tuple[ScenePod, dict[str, Any]]
) -> None:
    pod, conf = attached
    scene.api.delete_nad("default", "blue")
    scene.api.delete_nad("kube-system", "cluster")
    answer = call(runner, "DEL", conf, pod)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    assert scene.leftovers(pod) == []
    read = [r.path for r in scene.api.requests if r.path.rsplit("/", 1)[-1] in {"web", "status", "blue", "cluster"}]
    assert read == []  # DEL works from the cache: no pod or NAD read, no status write


def test_del_twice_succeeds(runner: Runner, scene: MetaScene, attached: tuple[ScenePod, dict[str, Any]]) -> None:
    pod, conf = attached
    assert call(runner, "DEL", conf, pod).rc == 0
    assert scene.leftovers(pod) == []
    again = call(runner, "DEL", conf, pod)
    assert again == (0, None), runner.last_stderr[-3000:]


def test_containerds_second_del_without_netns_is_a_quick_success(
    runner: Runner, scene: MetaScene, attached: tuple[ScenePod, dict[str, Any]]
) -> None:
    pod, conf = attached
    assert call(runner, "DEL", conf, pod).rc == 0  # on StopPodSandbox, with the netns
    scene.stop_api()
    answer = call(runner, "DEL", conf, pod, netns="")  # on RemovePodSandbox: no netns
    assert answer == (0, None), runner.last_stderr[-3000:]
    assert scene.leftovers(pod) == []


def test_del_without_netns_still_frees_ips_and_cache(
    runner: Runner, scene: MetaScene, attached: tuple[ScenePod, dict[str, Any]]
) -> None:
    pod, conf = attached
    answer = call(runner, "DEL", conf, pod, netns="")
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    assert scene.all_reserved_ips() == {} and scene.cache_files() == []


def test_del_after_the_netns_was_deleted(
    runner: Runner, scene: MetaScene, attached: tuple[ScenePod, dict[str, Any]]
) -> None:
    pod, conf = attached
    subprocess.run(["ip", "netns", "delete", ns_name(pod.netns)], check=True)
    answer = call(runner, "DEL", conf, pod)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    assert scene.all_reserved_ips() == {} and scene.cache_files() == []
    assert scene.node_veths() == []  # the host veths died with their peers


def test_check_passes_then_fails_once_an_address_is_gone(
    runner: Runner, scene: MetaScene, attached: tuple[ScenePod, dict[str, Any]]
) -> None:
    pod, conf = attached
    answer = call(runner, "CHECK", conf, pod)
    assert answer == (0, None), (answer.doc, runner.last_stderr[-3000:])
    (cidr,) = pod.addresses()["net1"]
    subprocess.run(["ip", "-n", ns_name(pod.netns), "addr", "del", cidr, "dev", "net1"], check=True)
    answer = call(runner, "CHECK", conf, pod)
    assert answer.rc != 0 and isinstance(answer.doc, dict), answer
    assert "default/blue" in answer.msg and "net1" in answer.msg, answer.msg


def test_check_of_an_unknown_container_fails(runner: Runner, scene: MetaScene) -> None:
    pod = scene.pod("web")
    answer = call(runner, "CHECK", scene.conf(), pod)
    assert answer.code == 3, answer


def test_gc_removes_sandboxes_the_runtime_no_longer_lists(runner: Runner, scene: MetaScene) -> None:
    scene.api.update_nad("kube-system", "cluster", config=json.dumps(
        scene.bridge("cluster", "npcl0", "10.91.0.0/24", cniVersion="1.1.0")
    ))
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24", cniVersion="1.1.0"))
    scene.add_nad("default", "green", scene.bridge("green", "npgr0", "10.93.0.0/24", cniVersion="1.1.0"))
    conf = scene.conf(cniVersion="1.1.0")
    keep = scene.pod("keep", annotations={NETWORKS: "blue"})
    stale = scene.pod("stale", annotations={NETWORKS: "blue, green"})
    for pod in (keep, stale):
        answer = call(runner, "ADD", conf, pod)
        assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    kept = {network: _held_by(scene, network, keep) for network in ("cluster", "blue")}
    assert all(len(ips) == 1 for ips in kept.values())
    # Reservations no cache entry knows of (a crash before netplex wrote anything),
    # one in a network that only the stale sandbox used.
    (scene.data_dir / "cluster" / "10.91.0.200").write_text("leaked-container\r\neth0")
    (scene.data_dir / "green" / "10.93.0.200").write_text("leaked-container\r\nnet2")
    valid = [{"containerID": keep.container_id, "ifname": "eth0"}]
    answer = runner.gc(conf | {"cni.dev/valid-attachments": valid})
    assert answer == (0, None), (answer.doc, runner.last_stderr[-3000:])
    assert stale.links() == {}
    assert sorted(keep.addresses()) == ["eth0", "net1"]
    assert [name for name in scene.cache_files() if name.endswith(".json")] == [f"{keep.container_id}-eth0.json"]
    assert scene.all_reserved_ips() == kept
    assert len(scene.node_veths()) == 2  # keep's two; the stale sandbox's are gone


def _held_by(scene: MetaScene, network: str, pod: ScenePod) -> list[str]:
    directory = scene.data_dir / network
    return [ip for ip in scene.reserved_ips(network) if (directory / ip).read_text().startswith(pod.container_id)]


def test_status_without_the_readiness_file_is_code_50(runner: Runner, scene: MetaScene) -> None:
    indicator = scene.root / "ready"
    conf = scene.conf(cniVersion="1.1.0", readinessindicatorfile=str(indicator))
    answer = runner.status(conf)
    assert answer.code == 50, answer
    assert str(indicator) in answer.msg
    indicator.write_text("")
    assert runner.status(conf) == (0, None)
