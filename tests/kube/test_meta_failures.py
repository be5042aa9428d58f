"""The meta-plugin's failed ADDs: the error names the culprit with the right CNI code, and
nothing is left behind in the kernel, in host-local's files or in netplex's cache."""

from __future__ import annotations

import json
import time

import pytest

from tests.kube.conftest import MetaScene
from tests.kube.runners import Runner

pytestmark = pytest.mark.netns

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def test_missing_nad_is_named_and_nothing_is_attached(runner: Runner, scene: MetaScene) -> None:
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    pod = scene.pod("web", annotations={NETWORKS: "blue, default/nowhere"})
    answer = runner.add(scene.conf(), container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.code == 7, answer
    assert "default/nowhere" in answer.msg and "not found" in answer.msg
    assert scene.leftovers(pod) == []
    assert not [r for r in scene.api.requests if r.method == "PATCH"]


def test_capability_not_declared_is_refused_before_any_delegate(runner: Runner, scene: MetaScene) -> None:
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))  # no "ips" capability
    pod = scene.pod("web", annotations={NETWORKS: json.dumps([{"name": "blue", "ips": ["10.92.0.9/24"]}])})
    answer = runner.add(scene.conf(), container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.code == 7, answer
    assert "'ips'" in answer.msg and "default/blue" in answer.msg
    assert scene.leftovers(pod) == []


def test_failing_third_delegate_rolls_back_the_first_two(runner: Runner, scene: MetaScene) -> None:
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    scene.add_nad("default", "broken", scene.macvlan("broken", "npnomaster0", "10.94.0.0/24"))
    pod = scene.pod("web", annotations={NETWORKS: "blue, broken"})
    answer = runner.add(scene.conf(), container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.rc != 0 and answer.code is not None, answer
    assert "default/broken" in answer.msg and "net2" in answer.msg, answer.msg
    assert "npnomaster0" in answer.msg, answer.msg
    # The cluster network and blue were added, then DELeted in reverse: kernel, IPs, cache.
    assert scene.leftovers(pod) == []
    assert not [r for r in scene.api.requests if r.method == "PATCH"]


def test_failing_chained_plugin_rolls_back_its_own_network_too(runner: Runner, scene: MetaScene) -> None:
    scene.fake_plugin("fake-fail", fail_on="ADD")
    conflist = scene.conflist("chained", scene.bridge("chained", "npch0", "10.99.0.0/24"), {"type": "fake-fail"})
    scene.add_nad("default", "chained", conflist)
    pod = scene.pod("web", annotations={NETWORKS: "chained"})
    answer = runner.add(scene.conf(), container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.code == 7, answer
    assert "fake failure" in answer.msg and "default/chained" in answer.msg
    assert [call["command"] for call in scene.plugin_calls("fake-fail")] == ["ADD", "DEL"]
    assert scene.leftovers(pod) == []


def test_unreachable_api_server_is_try_again_later(runner: Runner, scene: MetaScene) -> None:
    pod = scene.pod("web")
    conf = scene.conf()
    # A DEL first, as kubelet may send: it needs no API (and lets a daemon start and sync).
    assert runner.delete(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args).rc == 0
    scene.stop_api()
    answer = runner.add(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.code == 11, answer
    assert scene.leftovers(pod) == []


def test_failed_network_status_patch_rolls_back(runner: Runner, scene: MetaScene) -> None:
    pod = scene.pod("web")
    scene.api.fail_next(500, method="PATCH")
    answer = runner.add(scene.conf(), container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.code == 11, answer
    assert "network-status" in answer.msg
    assert scene.leftovers(pod) == []


def test_a_stalled_api_server_is_error_11_within_the_add_deadline(runner: Runner, scene: MetaScene) -> None:
    """Every API call is bounded by what is left of addTimeout, not only by its client
    timeout: a network-status PATCH the server holds for a minute fails the ADD with 11,
    rolled back, long before the server would answer."""
    if runner.name != "thin":
        pytest.skip("the daemon's own client has its watch caches and timeouts; thin mode's calls are the CNI path's")
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    pod = scene.pod("web", annotations={NETWORKS: "blue"})
    scene.api.delay_next(60.0, method="PATCH")
    started = time.monotonic()
    answer = runner.add(scene.conf(addTimeout=4.0), container_id=pod.container_id, netns=pod.netns,
                        cni_args=pod.cni_args)
    assert answer.code == 11, answer
    assert "cannot write network-status" in answer.msg, answer.msg
    assert time.monotonic() - started < 45.0  # the server would answer after 60 s
    assert len(scene.api.requests_to("PATCH", f"/api/v1/namespaces/default/pods/{pod.name}/status")) <= 1
    assert scene.leftovers(pod) == []
