"""Pod events through the real `netplex` executable (thin and daemon mode) to the API
double: one `AddedInterface` per attachment, worded as Multus words it, and a Warning
`FailedAddInterface` naming the network and the reason when an ADD fails."""

from __future__ import annotations

import pytest

from tests.kube.conftest import MetaScene
from tests.kube.runners import Runner

pytestmark = pytest.mark.netns

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def test_add_posts_added_interface_for_every_attachment(runner: Runner, scene: MetaScene) -> None:
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    pod = scene.pod("web", annotations={NETWORKS: "blue"})
    conf = scene.conf()
    answer = runner.add(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    events = scene.api.wait_for_events(2)
    assert [(e["reason"], e["type"]) for e in events] == [("AddedInterface", "Normal")] * 2
    addresses = pod.addresses()
    assert sorted(e["message"] for e in events) == sorted([
        f"Add eth0 [{addresses['eth0'][0]}] from kube-system/cluster",
        f"Add net1 [{addresses['net1'][0]}] from default/blue",
    ])
    for event in events:
        assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "default",
                                           "name": "web", "uid": pod.uid}
        assert event["source"]["component"] == "netplex"
        assert event["metadata"]["namespace"] == "default"
    assert runner.delete(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args).rc == 0


def test_a_failed_add_posts_a_warning_naming_the_network_and_the_reason(runner: Runner, scene: MetaScene) -> None:
    scene.fake_plugin("broken", fail_on="ADD")
    scene.add_nad("default", "bad", {"cniVersion": "1.0.0", "name": "bad", "type": "broken"})
    pod = scene.pod("web", annotations={NETWORKS: "bad"})
    answer = runner.add(scene.conf(), container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.rc == 1 and answer.code == 7, answer.doc
    events = scene.api.wait_for_events(1)
    warnings = [e for e in events if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["FailedAddInterface"], events
    assert "default/bad" in warnings[0]["message"] and "fake failure" in warnings[0]["message"]
    assert scene.leftovers(pod) == []
