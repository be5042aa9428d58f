"""Daemon mode end to end: `netplex daemon` in a throwaway node namespace, watching the
API double, and the real shim (`netplex` with `daemonSocket`) as a runtime runs it.

What only daemon mode promises: a warm cache answers an ADD with one API write and no
read; a miss is one live read; bounded concurrency and one request per sandbox at a
time; a graceful SIGTERM; the shim without a daemon (ADD waits then error 11, DEL does it
itself); metrics; and a shim that imports the standard library only. The scenarios both
modes share live in tests/kube/test_meta_*.py (the `runner` fixture runs them here too)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from delegates.netlink import netns
from meta import shim
from tests.kube.conftest import MetaScene, ScenePod
from tests.kube.runners import NETPLEX, Answer
from tests.kube.runners_daemon import DaemonRunner

pytestmark = pytest.mark.netns

NOT_STDLIB_ON_THE_SHIM_PATH = {
    "pyroute2", "kubernetes", "pydantic", "pydantic_core", "yaml", "urllib3", "jsonschema",
    "prometheus_client", "delegates", "cni",
}
STATUS_PATH = "/api/v1/namespaces/default/pods/{name}/status"


@pytest.fixture
def make_daemon(scene: MetaScene, tmp_path: Path) -> Iterator[Callable[..., DaemonRunner]]:
    made: list[DaemonRunner] = []

    def make(**kwargs: Any) -> DaemonRunner:
        workdir = tmp_path / f"daemon-{len(made)}"
        workdir.mkdir()
        runner = DaemonRunner(node_ns=scene.node_ns, workdir=workdir, **kwargs)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


@pytest.fixture
def daemon(make_daemon: Callable[..., DaemonRunner], scene: MetaScene) -> DaemonRunner:
    runner = make_daemon()
    runner.start(scene.kubeconfig)
    assert runner.wait_ready(10)
    return runner


@pytest.fixture
def nets(scene: MetaScene) -> MetaScene:
    scene.add_nad("default", "blue", scene.bridge("blue", "npbl0", "10.92.0.0/24"))
    scene.add_nad("default", "green", scene.bridge("green", "npgr0", "10.93.0.0/24"))
    return scene


def _add(runner: DaemonRunner, scene: MetaScene, pod: ScenePod, **conf: Any) -> Answer:
    return runner.add(scene.conf(**conf), container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)


def _del(runner: DaemonRunner, scene: MetaScene, pod: ScenePod, **conf: Any) -> Answer:
    return runner.delete(scene.conf(**conf), container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)


def _ok(answer: Answer, runner: DaemonRunner) -> dict[str, Any]:
    assert answer.rc == 0, (answer.doc, runner.last_stderr[-2000:], runner._read_log()[-3000:])
    return answer.doc if isinstance(answer.doc, dict) else {}


def _not_watches(scene: MetaScene) -> list[Any]:
    """The API requests but the daemon's own watches (which restart whenever they like) and
    its asynchronous pod events (tests/kube/test_events.py)."""
    return [r for r in scene.api.requests
            if r.query.get("watch", [""])[0] not in ("1", "true") and not r.path.endswith("/events")]


def _wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_warm_cache_add_is_one_write_and_no_read(daemon: DaemonRunner, nets: MetaScene) -> None:
    pod = nets.pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "blue,green"})
    assert daemon.sync()
    daemon.sync_before_add = False  # type: ignore[misc]
    nets.api.clear_requests()
    result = _ok(_add(daemon, nets, pod), daemon)
    assert [i["name"] for i in result["interfaces"] if i.get("sandbox")] == ["eth0", "net1", "net2"]
    assert [(r.method, r.path) for r in _not_watches(nets)] == [("PATCH", STATUS_PATH.format(name="web"))]
    assert [entry["interface"] for entry in nets.network_status(pod)] == ["eth0", "net1", "net2"]
    _ok(_del(daemon, nets, pod), daemon)
    assert nets.leftovers(pod) == []


def test_the_daemons_api_writes_reuse_kept_alive_connections(daemon: DaemonRunner, nets: MetaScene) -> None:
    """Status PATCHes and event POSTs share pooled connections (meta.kubelight), as they
    would with kube-apiserver: the double keeps connections alive and records each one."""
    pods = [nets.pod(name, annotations={"k8s.v1.cni.cncf.io/networks": "blue"}) for name in ("web", "db")]
    assert daemon.sync()
    nets.api.clear_requests()
    for pod in pods:
        _ok(_add(daemon, nets, pod), daemon)
    _wait_for(lambda: len([r for r in nets.api.requests if r.method == "POST"]) >= 2)
    writes = [r for r in nets.api.requests if r.method in ("PATCH", "POST")]
    # Two writers (the request thread, the event poster), so at most two connections at a
    # time; more writes than connections means a connection served more than one.
    assert len({r.connection for r in writes}) < len(writes), [(r.method, r.connection) for r in writes]
    for pod in pods:
        _ok(_del(daemon, nets, pod), daemon)


def test_a_pod_the_cache_does_not_hold_is_read_once(daemon: DaemonRunner, nets: MetaScene) -> None:
    pod = nets.pod("web", in_api=False)
    nets.api.add_pod("default", "web", uid=pod.uid, node_name="node-2", annotations={
        "k8s.v1.cni.cncf.io/networks": "blue",
    })  # another node's pod: never in this node's cache
    assert daemon.sync()
    daemon.sync_before_add = False  # type: ignore[misc]
    nets.api.clear_requests()
    _ok(_add(daemon, nets, pod), daemon)
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in _not_watches(nets)] == [("GET", "web"), ("PATCH", "status")]
    _ok(_del(daemon, nets, pod), daemon)


def test_pods_are_attached_in_parallel(make_daemon: Callable[..., DaemonRunner], nets: MetaScene) -> None:
    runner = make_daemon(concurrency=4)
    runner.start(nets.kubeconfig)
    pods = [nets.pod(f"web-{index}", annotations={"k8s.v1.cni.cncf.io/networks": "blue"}) for index in range(8)]
    with concurrent.futures.ThreadPoolExecutor(len(pods)) as pool:
        answers = list(pool.map(lambda pod: _add(runner, nets, pod), pods))
    assert [answer.rc for answer in answers] == [0] * len(pods), [a.doc for a in answers if a.rc]
    addresses = [address for pod in pods for cidrs in pod.addresses().values() for address in cidrs]
    assert len(set(addresses)) == 2 * len(pods)
    with concurrent.futures.ThreadPoolExecutor(len(pods)) as pool:
        answers = list(pool.map(lambda pod: _del(runner, nets, pod), pods))
    assert [answer.rc for answer in answers] == [0] * len(pods)
    assert nets.leftovers(*pods) == []


def test_a_request_past_the_worker_limit_waits_until_its_deadline(
    make_daemon: Callable[..., DaemonRunner], scene: MetaScene
) -> None:
    runner = make_daemon(concurrency=1)
    runner.start(scene.kubeconfig)
    slow, late = scene.pod("slow"), scene.pod("late")
    scene.api.delay_next(3.0, method="PATCH")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(_add, runner, scene, slow)
        _wait_for(lambda: any(r.method == "PATCH" for r in scene.api.requests))
        answer = _add(runner, scene, late, addTimeout=1.0)
        # "busy" proves it was refused at its own deadline: had it waited until the
        # worker freed up, it would have had the worker and succeeded.
        assert answer.code == 11, answer
        assert "busy" in answer.msg
        assert [r.path for r in scene.api.requests if "/late" in r.path] == []  # it never started
        _ok(first.result(), runner)
    assert late.links() == {}
    _ok(_del(runner, scene, slow), runner)
    assert scene.leftovers(slow, late) == []


def test_add_and_del_of_one_sandbox_never_interleave(daemon: DaemonRunner, scene: MetaScene) -> None:
    pod = scene.pod("web")
    scene.api.delay_next(1.5, method="PATCH")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        adding = pool.submit(_add, daemon, scene, pod)
        # The DEL is sent while the ADD is held inside the daemon (its status PATCH is).
        _wait_for(lambda: any(r.method == "PATCH" for r in scene.api.requests))
        answer = _del(daemon, scene, pod)
        _ok(adding.result(), daemon)
    _ok(answer, daemon)
    # The order comes from a record, never from client clocks: the daemon logs each
    # request when it is done, one after the other, and the DEL's entry follows the ADD's.
    done = [
        line.split()[line.split().index(command)]
        for line in daemon._read_log().splitlines()
        for command in ("ADD", "DEL")
        if f"{command} {pod.container_id} " in line and ": ok in " in line
    ]
    assert done == ["ADD", "DEL"], daemon._read_log()[-3000:]
    patches = [r.seq for r in scene.api.requests if r.method == "PATCH"]
    assert len(patches) == 1  # the DEL wrote nothing: it ran from the cache, after the ADD
    assert scene.leftovers(pod) == []


def test_sigterm_lets_the_request_in_flight_finish(daemon: DaemonRunner, scene: MetaScene) -> None:
    pod = scene.pod("web")
    conflist = scene.conf_dir / "00-netplex.conflist"
    conflist.write_text("{}")
    scene.api.delay_next(1.5, method="PATCH")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        adding = pool.submit(_add, daemon, scene, pod)
        _wait_for(lambda: any(r.method == "PATCH" for r in scene.api.requests))
        assert daemon.stop() == 0
        _ok(adding.result(), daemon)
    assert not os.path.exists(daemon.socket_path)
    assert os.path.exists(shim.snapshot_path(daemon.socket_path))  # for the shim's DEL fallback
    assert conflist.read_text() == "{}"
    assert "shutting down" in daemon.last_daemon_log
    # A new daemon picks up where this one left off: the cache is on disk.
    daemon.start(scene.kubeconfig)
    _ok(_del(daemon, scene, pod), daemon)
    assert scene.leftovers(pod) == []


def test_without_a_daemon_del_deletes_by_itself(daemon: DaemonRunner, nets: MetaScene) -> None:
    pod = nets.pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "blue"})
    _ok(_add(daemon, nets, pod), daemon)
    code = daemon.stop()
    assert code == 0, daemon.last_daemon_log[-4000:]  # the log tells which part of the shutdown hung
    daemon.autostart = False
    _ok(_del(daemon, nets, pod), daemon)
    assert "deleting from the cache" in daemon.last_stderr
    assert nets.leftovers(pod) == []


def test_without_a_daemon_add_waits_then_is_try_again_later(
    make_daemon: Callable[..., DaemonRunner], scene: MetaScene
) -> None:
    runner = make_daemon()
    runner.autostart = False
    pod = scene.pod("web")
    started = time.monotonic()
    answer = _add(runner, scene, pod, addTimeout=1.0)
    assert answer.code == 11, answer
    assert "not ready after 1s" in answer.msg
    assert time.monotonic() - started >= 1.0  # it did wait (a lower bound holds under any load)
    assert scene.leftovers(pod) == []


def test_metrics_count_requests_delegates_api_calls_and_cache_objects(
    make_daemon: Callable[..., DaemonRunner], nets: MetaScene
) -> None:
    port = random.randint(20000, 60000)  # the node namespace is ours alone
    runner = make_daemon(daemon_keys={"metricsAddress": f"127.0.0.1:{port}"})
    runner.start(nets.kubeconfig)
    pod = nets.pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "blue"})
    _ok(_add(runner, nets, pod), runner)
    _ok(_del(runner, nets, pod), runner)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text: str = response.read().decode()
            return text

    text = netns.call(nets.node_ns, scrape)  # the daemon listens in the node namespace

    def value(pattern: str) -> float:
        found = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
        assert found, f"no {pattern} in\n{text}"
        return float(found.group(1))

    assert value(r'netplex_cni_requests_total\{code="0",command="ADD"\}') == 1
    assert value(r'netplex_cni_requests_total\{code="0",command="DEL"\}') == 1
    assert value(r'netplex_cni_request_duration_seconds_count\{code="0",command="ADD"\}') == 1
    assert value(r'netplex_delegate_duration_seconds_count\{command="ADD",type="bridge"\}') == 2
    assert value(r'netplex_api_requests_total\{verb="patch"\}') == 1
    assert value(r'netplex_api_requests_total\{verb="watch"\}') >= 2
    assert value(r'netplex_cache_objects\{cache="pods"\}') == 1
    assert value(r'netplex_cache_objects\{cache="network-attachment-definitions"\}') == 3
    assert value("netplex_inflight_requests") == 0


def test_the_shim_imports_the_standard_library_only(daemon: DaemonRunner, scene: MetaScene) -> None:
    pod = scene.pod("web")
    conf = scene.conf(daemonSocket=daemon.socket_path)
    assert daemon.sync()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": "ADD", "CNI_CONTAINERID": pod.container_id,
        "CNI_NETNS": pod.netns, "CNI_IFNAME": "eth0", "CNI_ARGS": pod.cni_args, "CNI_PATH": str(Path(NETPLEX).parent),
    }
    for command in ("ADD", "DEL"):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", NETPLEX], input=json.dumps(conf).encode(),
            env=env | {"CNI_COMMAND": command}, capture_output=True, timeout=60, check=False,
        )
        assert proc.returncode == 0, (proc.stdout, proc.stderr[-2000:])
        imported = _imported(proc.stderr.decode())
        assert "meta.fastshim" in imported
        assert not {name.split(".")[0] for name in imported} & NOT_STDLIB_ON_THE_SHIM_PATH, sorted(imported)
        # With the daemon answering, only bytes are copied: not even these are needed.
        assert not imported & {"meta.shim", "json", "typing", "socket", "logging", "dataclasses"}, sorted(imported)
    assert scene.leftovers(pod) == []


def _imported(importtime: str) -> set[str]:
    """Module names from `-X importtime` lines (`import time: self | cumulative | name`)."""
    names = set()
    for line in importtime.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def test_the_daemon_refuses_to_share_its_socket(daemon: DaemonRunner, make_daemon: Callable[..., DaemonRunner],
                                                 scene: MetaScene) -> None:
    config = daemon.workdir / "second.json"
    config.write_text(json.dumps({"socketPath": daemon.socket_path}))
    proc = subprocess.run(
        ["ip", "netns", "exec", os.path.basename(scene.node_ns), sys.executable, "-m", "meta.daemon",
         "--config", str(config)],
        capture_output=True, timeout=60, check=False,
    )
    assert proc.returncode == 1
    assert b"another netplex daemon is serving" in proc.stderr
    assert shim.Client(daemon.socket_path, timeout=5).ready()  # the first one still serves
