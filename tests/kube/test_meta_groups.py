"""DEL in one batch: every link one netplex invocation creates joins that invocation's
interface group (recorded in its cache entry), and DEL removes the group with one
RTM_DELLINK before the delegates' own DELs. Two netplex invocations on one sandbox
(podman's `network connect`) have different groups, and one's DEL never takes the other's
links. Both modes (thin and daemon), real kernel state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.kube.conftest import MetaScene, ScenePod
from tests.kube.runners import Runner

pytestmark = pytest.mark.netns

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def _groups(scene: MetaScene) -> dict[str, int]:
    """interfaceGroup by cache file name."""
    found = {}
    for name in scene.cache_files():
        doc = json.loads((scene.cni_dir / "cache" / name).read_text())
        found[name] = int(doc["interfaceGroup"])
    return found


def _add(runner: Runner, conf: dict[str, Any], pod: ScenePod, ifname: str) -> None:
    answer = runner.add(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args, ifname=ifname)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])


def test_the_links_of_one_add_share_one_recorded_group_and_del_removes_them(runner: Runner, scene: MetaScene) -> None:
    scene.add_nad("default", "blue", scene.bridge("blue", "npgb0", "10.93.0.0/24"))
    pod = scene.pod("grouped", annotations={NETWORKS: "blue"})
    conf = scene.conf()
    _add(runner, conf, pod, "eth0")
    (group,) = _groups(scene).values()
    assert group > 0
    assert {name: int(link["group"]) for name, link in pod.links().items()} == {"eth0": group, "net1": group}
    answer = runner.delete(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    assert scene.leftovers(pod) == []


def test_a_second_invocation_on_one_sandbox_has_its_own_group_and_its_del_leaves_the_first(
    runner: Runner, scene: MetaScene
) -> None:
    scene.add_nad("default", "blue", scene.bridge("blue", "npgb1", "10.94.0.0/24"))
    pod = scene.pod("connected", annotations={NETWORKS: "blue"})
    conf = scene.conf()
    _add(runner, conf, pod, "eth0")
    _add(runner, conf, pod, "eth1")  # podman network connect: the cluster network again, as eth1
    groups = _groups(scene)
    assert len(groups) == 2 and len(set(groups.values())) == 2
    assert sorted(pod.links()) == ["eth0", "eth1", "net1"]
    answer = runner.delete(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args, ifname="eth1")
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    assert sorted(pod.links()) == ["eth0", "net1"]
    assert sorted(pod.addresses()) == ["eth0", "net1"]
    answer = runner.delete(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    assert scene.leftovers(pod) == []


def test_a_cache_from_before_groups_still_deletes_link_by_link(runner: Runner, scene: MetaScene) -> None:
    pod = scene.pod("older")
    conf = scene.conf()
    _add(runner, conf, pod, "eth0")
    (name,) = scene.cache_files()
    path = scene.cni_dir / "cache" / name
    doc = json.loads(path.read_text())
    del doc["interfaceGroup"]  # as an older netplex wrote it
    path.write_text(json.dumps(doc))
    answer = runner.delete(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    assert scene.leftovers(pod) == []
