"""Multus's keys a switching operator keeps, through the real `netplex` executable (thin
and daemon mode): `auxiliaryCNIChainName` runs its chain after the cluster network on
its interface, and a `v1.multus-cni.io/default-network` naming a config file in confDir
(no such NetworkAttachmentDefinition) falls back to the file, as Multus does."""

from __future__ import annotations

import json

import pytest

from tests.kube.conftest import MetaScene
from tests.kube.runners import Runner

pytestmark = pytest.mark.netns

DEFAULT_NETWORK = "v1.multus-cni.io/default-network"


def test_the_auxiliary_chain_runs_after_the_cluster_network_on_its_interface(
    runner: Runner, scene: MetaScene
) -> None:
    scene.fake_plugin("auxplug")
    (scene.conf_dir / "50-aux.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "aux-chain", "plugins": [{"type": "auxplug"}]}))
    pod = scene.pod("web")
    conf = scene.conf(auxiliaryCNIChainName="aux-chain")
    answer = runner.add(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    calls = scene.plugin_calls("auxplug")
    assert [(c["command"], c["ifname"], c["prevResult"]) for c in calls] == [("ADD", "eth0", True)]
    assert [ip["address"] for ip in answer.doc["ips"]] == pod.addresses()["eth0"]  # the chain passed it on
    assert runner.check(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args).rc == 0
    assert runner.delete(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args).rc == 0
    assert [c["command"] for c in scene.plugin_calls("auxplug")] == ["ADD", "CHECK", "DEL"]
    assert scene.leftovers(pod) == []


def test_a_missing_auxiliary_chain_is_error_7_naming_the_key(runner: Runner, scene: MetaScene) -> None:
    pod = scene.pod("web")
    answer = runner.add(scene.conf(auxiliaryCNIChainName="nope"), container_id=pod.container_id, netns=pod.netns,
                        cni_args=pod.cni_args)
    assert answer.rc == 1 and answer.code == 7, answer.doc
    assert "auxiliaryCNIChainName" in answer.msg
    assert scene.leftovers(pod) == []


def test_a_default_network_override_naming_a_conf_file_falls_back_to_it(runner: Runner, scene: MetaScene) -> None:
    (scene.conf_dir / "10-alt.conf").write_text(json.dumps(scene.bridge("alt", "npal0", "10.97.0.0/24")))
    pod = scene.pod("web", annotations={DEFAULT_NETWORK: "alt"})
    conf = scene.conf()
    answer = runner.add(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    assert pod.addresses()["eth0"][0].startswith("10.97.0.")
    assert runner.delete(conf, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args).rc == 0
    assert scene.leftovers(pod) == []
