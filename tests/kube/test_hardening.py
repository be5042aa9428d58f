"""Issue 18's defects, each through the real `netplex` executable in thin and daemon mode:
a sandbox stays deletable whatever its ADD met (bad ifnames, a delegate that fails ADD and
DEL alike), path keys are absolute, a cniDir that is a file is an I/O error, a refused
request creates no logFile, IPAM data dirs stay under ipamRoots, and what a killed process
leaves on disk (temp files, unused IPAM dirs) is collected."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.kube.conftest import MetaScene, ScenePod
from tests.kube.runners import Answer, Runner
from tests.kube.runners_daemon import DaemonRunner

pytestmark = pytest.mark.netns

NETWORKS = "k8s.v1.cni.cncf.io/networks"
HOUR = 3600.0


def add(runner: Runner, scene: MetaScene, pod: ScenePod, conf: dict[str, Any] | None = None) -> Answer:
    return runner.add(conf or scene.conf(), container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)


def delete(runner: Runner, scene: MetaScene, pod: ScenePod, *, netns: bool = True) -> Answer:
    return runner.delete(
        scene.conf(), container_id=pod.container_id, netns=pod.netns if netns else "", cni_args=pod.cni_args
    )


def gc(runner: Runner, scene: MetaScene, **keys: Any) -> Answer:
    return runner.gc(scene.conf(cniVersion="1.1.0", **{"cni.dev/valid-attachments": []}, **keys))


def assert_error(runner: Runner, answer: Answer, code: int, named: str) -> None:
    assert answer.rc == 1 and answer.code == code, (answer, runner.last_stderr[-2000:])
    assert named in answer.msg, answer.msg
    assert "Traceback" not in runner.last_stdout + runner.last_stderr, runner.last_stderr[-3000:]


@pytest.mark.parametrize(
    "interface",
    ["n\udc80\udcff", "\ud800", "n\u00e01", "abcdefgh\u00e9\u00e9\u00e9\u00e9", "a b", "x:y", ".."],
    ids=["surrogate-escaped", "lone-surrogate", "kernel-space-byte", "16-bytes-utf8", "space", "colon", "dotdot"],
)
def test_bad_interface_in_the_selection_is_error_7_and_the_sandbox_stays_deletable(
    runner: Runner, scene: MetaScene, interface: str
) -> None:
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    pod = scene.pod("web", annotations={NETWORKS: json.dumps([{"name": "blue", "interface": interface}])})
    assert_error(runner, add(runner, scene, pod), 7, "interface")
    assert scene.leftovers(pod) == []
    assert delete(runner, scene, pod).rc == 0, runner.last_stdout
    assert gc(runner, scene).rc == 0, runner.last_stdout


def test_non_ascii_interface_of_at_most_15_bytes_is_attached(runner: Runner, scene: MetaScene) -> None:
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    name = "n\u00e9t\u00e9"  # 6 bytes of UTF-8, no byte the kernel takes for a space
    pod = scene.pod("web", annotations={NETWORKS: json.dumps([{"name": "blue", "interface": name}])})
    answer = add(runner, scene, pod)
    assert answer.rc == 0, (answer, runner.last_stderr[-3000:])
    assert name in pod.links()
    assert delete(runner, scene, pod).rc == 0
    assert scene.leftovers(pod) == []


def failing_plugin(scene: MetaScene, plugin_type: str, code: int) -> None:
    """An exec'd plugin whose ADD and DEL both fail with `code` (a delegate broken for good)."""
    path = scene.bin_dir / plugin_type
    answer = json.dumps({"cniVersion": "1.0.0", "code": code, "msg": "broken"})
    path.write_text(f"#!/bin/sh\ncat >/dev/null\necho '{answer}'\nexit 1\n")
    path.chmod(0o755)


@pytest.mark.parametrize("code", [999, 5, 11])
def test_delegate_failing_add_and_del_never_blocks_del_or_gc(runner: Runner, scene: MetaScene, code: int) -> None:
    failing_plugin(scene, "npbroken", code)
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    scene.add_nad("default", "broken", {"cniVersion": "1.0.0", "name": "broken", "type": "npbroken"})
    pod = scene.pod("web", annotations={NETWORKS: "blue, broken"})
    answer = add(runner, scene, pod)
    assert answer.code == code, answer
    assert scene.leftovers(pod) == []
    assert delete(runner, scene, pod).rc == 0, runner.last_stdout
    assert delete(runner, scene, pod, netns=False).rc == 0, runner.last_stdout
    assert gc(runner, scene).rc == 0, runner.last_stdout
    # and a fresh ADD of a healthy pod works
    healthy = scene.pod("other", annotations={NETWORKS: "blue"})
    assert add(runner, scene, healthy).rc == 0, runner.last_stdout
    assert delete(runner, scene, healthy).rc == 0
    assert scene.leftovers(pod, healthy) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cniDir", ""), ("cniDir", "relative/cache"), ("confDir", "net.d"), ("binDir", ""),
        ("logFile", "netplex.log"), ("kubeconfig", "kube.conf"), ("readinessindicatorfile", "ready"),
        ("localNetworks", "./networks"), ("cniDir", "/var/\u0000x"),
    ],
)
def test_relative_or_empty_path_key_is_error_7_naming_it(
    runner: Runner, scene: MetaScene, tmp_path: Path, key: str, value: str
) -> None:
    pod = scene.pod("web")
    before = set(os.listdir(tmp_path))
    if key == "kubeconfig" and isinstance(runner, DaemonRunner):
        # The daemon runner hands the call's kubeconfig to the daemon's own config: the
        # daemon then refuses to start, naming the key.
        with pytest.raises(AssertionError, match=r"kubeconfig: 'kube\.conf' is not an absolute path"):
            add(runner, scene, pod, scene.conf(**{key: value}))
        runner.stop()
        return
    answer = add(runner, scene, pod, scene.conf(**{key: value}))
    assert_error(runner, answer, 7, key)
    assert scene.leftovers(pod) == []
    assert set(os.listdir(tmp_path)) == before  # nothing written under the working directory


def test_cni_dir_that_is_a_file_is_an_io_error(runner: Runner, scene: MetaScene) -> None:
    pod = scene.pod("web")
    answer = add(runner, scene, pod, scene.conf(cniDir="/dev/null"))
    assert_error(runner, answer, 5, "/dev/null")
    assert scene.leftovers(pod) == []
    assert_error(runner, runner.delete(scene.conf(cniDir="/dev/null"), container_id=pod.container_id,
                                       netns=pod.netns, cni_args=pod.cni_args), 5, "/dev/null")


def test_refused_request_creates_no_log_file_and_an_accepted_one_does(
    runner: Runner, scene: MetaScene, tmp_path: Path
) -> None:
    log_file = tmp_path / "netplex-refused.log"
    pod = scene.pod("web")
    answer = add(runner, scene, pod, scene.conf(logFile=str(log_file), namespaceIsolation="yes"))
    assert_error(runner, answer, 7, "namespaceIsolation")
    assert not log_file.exists()
    if runner.name == "thin":  # in daemon mode the daemon's own config says where it logs
        answer = runner.status(scene.conf(logFile=str(log_file), cniVersion="1.1.0", logLevel="debug"))
        assert answer.rc == 0, answer
        assert log_file.exists()


def test_ipam_data_dir_escaping_ipam_roots_is_refused(runner: Runner, scene: MetaScene) -> None:
    escaping = scene.bridge("blue", "npbl0", "10.92.0.0/24")
    escaping["ipam"]["dataDir"] = f"{scene.data_dir}/../elsewhere"
    scene.add_nad("default", "blue", escaping)
    pod = scene.pod("web", annotations={NETWORKS: "blue"})
    answer = add(runner, scene, pod, scene.conf(ipamRoots=[str(scene.data_dir)]))
    assert_error(runner, answer, 7, "ipam.dataDir")
    assert scene.leftovers(pod) == []
    assert not (scene.root / "elsewhere").exists()
    inside = scene.bridge("green", "npgr0", "10.93.0.0/24")
    inside["ipam"]["dataDir"] = f"{scene.data_dir}/sub/../"  # normalised: the root itself
    scene.add_nad("default", "green", inside)
    pod2 = scene.pod("web2", annotations={NETWORKS: "green"})
    assert add(runner, scene, pod2, scene.conf(ipamRoots=[str(scene.data_dir)])).rc == 0, runner.last_stdout
    assert scene.reserved_ips("green")
    assert delete(runner, scene, pod2).rc == 0
    assert scene.leftovers(pod2) == []


def backdate(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_gc_collects_stale_temp_files_and_unused_ipam_dirs(runner: Runner, scene: MetaScene) -> None:
    cache_dir = scene.cni_dir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    stale, fresh = cache_dir / ".tmp-dead1234.part", cache_dir / ".tmp-live5678.part"
    stale.write_text("{")
    fresh.write_text("{")
    backdate(stale, HOUR)
    orphan = scene.data_dir / "gone-net"  # a network no cache entry names, holding nothing
    orphan.mkdir(parents=True)
    (orphan / "lock").write_text("")
    (orphan / "last_reserved_ip.0").write_text("10.99.0.7")
    held = scene.data_dir / "held-net"  # holds a reservation: never removed by the sweep
    held.mkdir()
    (held / "10.98.0.2").write_text("cother\r\neth0")
    (held / ".tmp-reserve-x.part").write_text("")
    backdate(held / ".tmp-reserve-x.part", HOUR)
    answer = gc(runner, scene, ipamRoots=[str(scene.data_dir)])
    assert answer.rc == 0, (answer, runner.last_stderr[-3000:])
    assert not stale.exists() and fresh.exists()
    assert not orphan.exists()
    assert sorted(os.listdir(held)) == ["10.98.0.2"]


def test_host_local_del_removes_the_temp_files_a_crash_left(runner: Runner, scene: MetaScene) -> None:
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    pod = scene.pod("web", annotations={NETWORKS: "blue"})
    assert add(runner, scene, pod).rc == 0
    network_dir = scene.data_dir / "blue"
    (network_dir / ".tmp-reserve-abc.part").write_text("c\r\neth9")
    (network_dir / ".tmp-hint123.part").write_text("10.92.0.9")
    assert delete(runner, scene, pod).rc == 0
    assert not [name for name in os.listdir(network_dir) if name.startswith(".tmp-")]
    assert scene.leftovers(pod) == []


# -- daemon mode only: its request parser, its config file, its start ----------------------


def raw_post(socket_path: str, body: bytes) -> tuple[int, Any]:
    """POST `body` as it is to the daemon's /cni; the HTTP status and the parsed answer."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(socket_path)
        head = f"POST /cni HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload)


@pytest.mark.parametrize(
    "body",
    [b"[" * 200_000, b'{"env": {}, "config": ' + b"{\"a\": " * 5000 + b"1" + b"}" * 5001, b"\xff\xfe", b"[]"],
    ids=["200k-brackets", "deep-config", "binary", "not-a-request"],
)
def test_daemon_answers_a_deep_or_bad_body_with_error_6(daemon_runner: Any, body: bytes) -> None:
    daemon_runner.start()
    status, doc = raw_post(daemon_runner.socket_path, body)
    assert status == 200, doc
    assert doc["exitCode"] == 1 and doc["output"]["code"] == 6, doc
    assert daemon_runner.running
    status, doc = raw_post(daemon_runner.socket_path, b"[" * 200_000)  # and it keeps serving
    assert doc["output"]["code"] == 6


def test_daemon_refuses_a_relative_cni_dir_in_its_config(daemon_runner: Any) -> None:
    daemon_runner.daemon_keys = {"cniDir": "var/lib/netplex"}
    with pytest.raises(AssertionError, match="cniDir"):
        daemon_runner.start()


def test_daemon_start_sweeps_stale_temp_files_and_unheld_locks(daemon_runner: Any, tmp_path: Path) -> None:
    cni_dir = tmp_path / "daemon-cni"
    (cni_dir / "cache").mkdir(parents=True)
    (cni_dir / "locks").mkdir()
    stale, fresh = cni_dir / "cache" / ".tmp-killed.part", cni_dir / "cache" / ".tmp-young.part"
    stale.write_text("{")
    fresh.write_text("{")
    backdate(stale, HOUR)
    (cni_dir / "locks" / "c0123.lock").write_text("")
    daemon_runner.daemon_keys = {"cniDir": str(cni_dir)}
    daemon_runner.start()
    assert not stale.exists() and fresh.exists()
    assert not (cni_dir / "locks" / "c0123.lock").exists()


@pytest.fixture
def daemon_runner(host_ns: str, tmp_path: Path) -> Any:
    workdir = tmp_path / "runner-daemon"
    workdir.mkdir()
    made = DaemonRunner(node_ns=host_ns, workdir=workdir)
    try:
        yield made
    finally:
        made.stop()
