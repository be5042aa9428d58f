"""Bad input to the real `netplex` executable: truncated, huge and garbage configs on
stdin, bad CNI_* variables and garbage selection annotations. Each gives one CNI error
JSON object on stdout with the right code (6 bad JSON, 7 naming the key, 1 a version we
do not speak, 4 a bad variable), never a traceback, and leaves nothing attached.
(tests/unit/meta/test_plugin_errors.py feeds many more garbage inputs in-process.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.kube.conftest import MetaScene, ScenePod
from tests.kube.runners import Answer, Runner

pytestmark = pytest.mark.netns

NETWORKS = "k8s.v1.cni.cncf.io/networks"
HUGE = 5 * 1024 * 1024


def assert_clean_error(runner: Runner, answer: Answer, scene: MetaScene, pod: ScenePod, code: int) -> None:
    """One error object on stdout with `code`; no traceback anywhere; nothing attached."""
    assert answer.rc == 1, (answer, runner.last_stderr[-2000:])
    assert isinstance(answer.doc, dict), runner.last_stdout[:2000]
    assert runner.last_stdout.strip().count("\n") == 0, runner.last_stdout[:2000]
    assert set(answer.doc) <= {"cniVersion", "code", "msg", "details"}, answer.doc
    assert answer.code == code, answer.doc
    assert "Traceback" not in runner.last_stdout + runner.last_stderr, runner.last_stderr[-3000:]
    assert scene.leftovers(pod) == []


def add(runner: Runner, scene: MetaScene, pod: ScenePod, conf: dict[str, Any] | bytes, **env: str) -> Answer:
    return runner.call(
        "ADD", conf, container_id=pod.container_id, netns=pod.netns, ifname="eth0", cni_args=pod.cni_args,
        env=env or None,
    )


@pytest.mark.parametrize(
    ("mangle", "code", "named"),
    [
        (lambda conf: json.dumps(conf).encode()[:57], 6, "not valid JSON"),
        (lambda conf: b"\xff\xfe garbage \x00", 6, "not valid JSON"),
        (lambda conf: b"[" * 100_000, 6, "not valid JSON"),
        (lambda conf: b'{"pad": "' + b"x" * HUGE + b'"}', 6, "larger than"),
        (lambda conf: conf | {"cniVersion": "9.9.9"}, 1, "9.9.9"),
        (lambda conf: conf | {"namespaceIsolation": "yes"}, 7, "namespaceIsolation"),
        (lambda conf: conf | {"defaultNetworks": {"a": 1}}, 7, "defaultNetworks"),
        (lambda conf: conf | {"addTimeout": -1.0}, 7, "addTimeout"),
        (lambda conf: {k: v for k, v in conf.items() if k != "clusterNetwork"}, 7, "clusterNetwork"),
        (lambda conf: conf | {"clusterNetwork": "", "delegates": [{"type": "bridge", "ipam": 3}]}, 7, "ipam"),
    ],
    ids=["truncated", "binary", "deep", "huge", "version", "bool-key", "list-key", "timeout", "no-cluster", "delegate"],
)
def test_bad_config_is_a_clean_error(runner: Runner, scene: MetaScene, mangle: Any, code: int, named: str) -> None:
    pod = scene.pod("web")
    answer = add(runner, scene, pod, mangle(scene.conf()))
    assert_clean_error(runner, answer, scene, pod, code)
    assert named in answer.msg, answer.msg


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CNI_CONTAINERID": "../../etc/passwd"}, "CNI_CONTAINERID"),
        ({"CNI_IFNAME": ""}, "CNI_IFNAME"),
        ({"CNI_IFNAME": "eth0/../x"}, "CNI_IFNAME"),
        ({"CNI_NETNS": "relative/netns"}, "CNI_NETNS"),
        ({"CNI_ARGS": "K8S_POD_NAME"}, "CNI_ARGS"),
        ({"CNI_COMMAND": "EXPLODE"}, "CNI_COMMAND"),
    ],
    ids=["container-id", "no-ifname", "ifname", "netns", "args", "command"],
)
def test_bad_environment_is_error_4(runner: Runner, scene: MetaScene, env: dict[str, str], named: str) -> None:
    pod = scene.pod("web")
    answer = add(runner, scene, pod, scene.conf(), **env)
    assert_clean_error(runner, answer, scene, pod, 4)
    assert named in answer.msg, answer.msg


@pytest.mark.parametrize(
    ("annotation", "code", "named"),
    [
        ('[{"name": "blue", "interface": "n', 6, "not valid JSON"),
        ('{"name": "blue"}', 6, "list"),
        ("blue, Blue_Net!", 7, "element 1"),
        (json.dumps([{"name": "blue", "mac": "zz:zz"}]), 7, "mac"),
        ("blue," * 20_000, 7, "KiB"),
    ],
    ids=["truncated", "object", "bad-name", "bad-mac", "huge"],
)
def test_garbage_annotation_is_a_clean_error(
    runner: Runner, scene: MetaScene, annotation: str, code: int, named: str
) -> None:
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    pod = scene.pod("web", annotations={NETWORKS: annotation})
    answer = add(runner, scene, pod, scene.conf())
    assert_clean_error(runner, answer, scene, pod, code)
    assert named in answer.msg and NETWORKS in answer.msg, answer.msg
    assert not [r for r in scene.api.requests if r.method == "PATCH"]


def test_garbage_nad_config_is_error_7_naming_the_nad(runner: Runner, scene: MetaScene) -> None:
    scene.add_nad("default", "blue", '{"cniVersion": "1.0.0", "type": "bridge", "ipam": {')
    pod = scene.pod("web", annotations={NETWORKS: "blue"})
    answer = add(runner, scene, pod, scene.conf())
    assert_clean_error(runner, answer, scene, pod, answer.code or 0)
    assert answer.code in (6, 7) and "default/blue" in answer.msg, answer.msg
