"""Hot-plug end to end: `netplex daemon` watching the API double, pods attached through
the real shim, then their selection annotation edited in the double; every test asserts
the sandbox's links and addresses (the kernel) and network-status and requests (the API).

Hot-plug's events reach the API double (core/v1 Events) and the daemon's log alike
(meta.hotplug.events.LogAndSink); ordering is asserted from that log, never from clocks here."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from delegates.netlink import netns
from tests.kube.conftest import MetaScene, ScenePod
from tests.kube.runners import NETPLEX, Answer
from tests.kube.runners_daemon import DaemonRunner
from tests.netns.conftest import ns_name

pytestmark = pytest.mark.netns

NETWORKS = "k8s.v1.cni.cncf.io/networks"
STATUS_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/status"
WAIT = 20.0


@pytest.fixture
def make_daemon(scene: MetaScene, tmp_path: Path) -> Iterator[Callable[..., DaemonRunner]]:
    made: list[DaemonRunner] = []

    def make(**keys: Any) -> DaemonRunner:
        workdir = tmp_path / f"daemon-{len(made)}"
        workdir.mkdir()
        runner = DaemonRunner(
            node_ns=scene.node_ns, workdir=workdir, daemon_keys={"cniDir": str(scene.cni_dir), **keys}
        )
        made.append(runner)
        runner.start(scene.kubeconfig)
        assert runner.wait_ready(10)
        return runner

    yield make
    for runner in made:
        runner.close()


@pytest.fixture
def daemon(make_daemon: Callable[..., DaemonRunner]) -> DaemonRunner:
    return make_daemon()


@pytest.fixture
def nets(scene: MetaScene) -> MetaScene:
    scene.add_nad("default", "blue", scene.bridge("blue", "nphb0", "10.92.0.0/24"))
    scene.add_nad("default", "green", scene.bridge("green", "nphg0", "10.93.0.0/24"))
    scene.add_nad("default", "red", scene.bridge("red", "nphr0", "10.94.0.0/24"))
    return scene


def attached(daemon: DaemonRunner, scene: MetaScene, name: str, networks: str, **pod: Any) -> ScenePod:
    """A pod asking for `networks`, ADDed through the daemon."""
    made = scene.pod(name, annotations={NETWORKS: networks}, **pod)
    ok(call(daemon, "ADD", scene, made), daemon)
    return made


def call(daemon: DaemonRunner, command: str, scene: MetaScene, pod: ScenePod) -> Answer:
    return daemon.call(
        command, scene.conf(), container_id=pod.container_id, netns=pod.netns, ifname="eth0", cni_args=pod.cni_args
    )


def ok(answer: Answer, daemon: DaemonRunner) -> Any:
    assert answer.rc == 0, (answer.doc, daemon.last_stderr[-2000:], daemon._read_log()[-3000:])
    return answer.doc


def annotate(scene: MetaScene, pod: ScenePod, networks: str) -> None:
    scene.api.annotate_pod(pod.namespace, pod.name, {NETWORKS: networks})


def wait_for(check: Callable[[], bool], what: str, daemon: DaemonRunner, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s; daemon log:\n{daemon._read_log()[-4000:]}"
        time.sleep(0.02)


def up_links(pod: ScenePod) -> list[str]:
    """The sandbox's links that are up (`lo` aside), sorted."""
    return sorted(name for name, link in pod.links().items() if "UP" in link.get("flags", []))


def status_of(scene: MetaScene, pod: ScenePod) -> dict[str, list[str]]:
    """network-status as {interface: ips}, in its order."""
    return {entry["interface"]: entry.get("ips", []) for entry in scene.network_status(pod)}


def settled(scene: MetaScene, pod: ScenePod, interfaces: list[str]) -> Callable[[], bool]:
    """Kernel and API agree on `interfaces` (all up, listed in that order in network-status)."""

    def check() -> bool:
        return up_links(pod) == sorted(interfaces) and list(status_of(scene, pod)) == interfaces

    return check


def status_patches(scene: MetaScene, pod: ScenePod) -> int:
    path = STATUS_PATH.format(namespace=pod.namespace, name=pod.name)
    return len(scene.api.requests_to("PATCH", path))


def log_lines(daemon: DaemonRunner, *needles: str) -> list[str]:
    return [line for line in daemon._read_log().splitlines() if all(needle in line for needle in needles)]


def test_a_network_added_to_the_annotation_appears_in_the_running_pod(daemon: DaemonRunner, nets: MetaScene) -> None:
    pod = attached(daemon, nets, "web", "blue")
    before = pod.addresses()
    annotate(nets, pod, "blue,green")
    wait_for(settled(nets, pod, ["eth0", "net1", "net2"]), "net2 up and in network-status", daemon)
    after = pod.addresses()
    assert after["eth0"] == before["eth0"] and after["net1"] == before["net1"]  # untouched: no flap
    assert after["net2"][0].startswith("10.93.0.")
    assert status_of(nets, pod)["net2"] == [after["net2"][0].split("/")[0]]
    assert nets.reserved_ips("green") == [after["net2"][0].split("/")[0]]
    assert log_lines(daemon, "AddedInterface", "net2", "default/green")

    def posted() -> bool:  # the API's own record of the event, posted asynchronously
        return any(
            event.get("reason") == "AddedInterface" and "net2" in event.get("message", "")
            and "default/green" in event.get("message", "") and event["involvedObject"]["name"] == "web"
            for event in nets.api.events_posted
        )

    wait_for(posted, "an AddedInterface event for net2 in the API", daemon)


def test_two_networks_added_at_once_come_in_annotation_order(daemon: DaemonRunner, nets: MetaScene) -> None:
    pod = attached(daemon, nets, "web", "blue")
    annotate(nets, pod, "blue,red,green")
    wait_for(settled(nets, pod, ["eth0", "net1", "net2", "net3"]), "net2 and net3", daemon)
    addresses = pod.addresses()
    assert addresses["net2"][0].startswith("10.94.0.") and addresses["net3"][0].startswith("10.93.0.")
    names = [entry["name"] for entry in nets.network_status(pod)]
    assert names == ["kube-system/cluster", "default/blue", "default/red", "default/green"]
    added = log_lines(daemon, "AddedInterface")
    assert ["net2" in added[0], "net3" in added[1]] == [True, True]  # ADDed in annotation order


def test_removing_one_from_the_middle_keeps_the_others_names_and_addresses(
    daemon: DaemonRunner, nets: MetaScene
) -> None:
    pod = attached(daemon, nets, "web", "blue,green,red")
    before = pod.addresses()
    veths = len(nets.node_veths())
    annotate(nets, pod, "blue,red")
    wait_for(settled(nets, pod, ["eth0", "net1", "net3"]), "net2 gone", daemon)
    after = pod.addresses()
    assert after == {name: before[name] for name in ("eth0", "net1", "net3")}
    assert nets.reserved_ips("green") == []
    assert len(nets.node_veths()) == veths - 1
    assert [entry["name"] for entry in nets.network_status(pod)] == [
        "kube-system/cluster", "default/blue", "default/red",
    ]
    assert log_lines(daemon, "RemovedInterface", "net2", "default/green")


def test_replacing_one_network_with_another_in_one_edit(daemon: DaemonRunner, nets: MetaScene) -> None:
    pod = attached(daemon, nets, "web", "blue,green")
    before = pod.addresses()
    annotate(nets, pod, "blue,red")
    wait_for(settled(nets, pod, ["eth0", "net1", "net3"]), "green out, red in", daemon)
    after = pod.addresses()
    assert after["net1"] == before["net1"]
    assert after["net3"][0].startswith("10.94.0.")  # a new name: net2 is not handed to another network
    assert nets.reserved_ips("green") == []
    removed, added = log_lines(daemon, "RemovedInterface"), log_lines(daemon, "AddedInterface")
    log = daemon._read_log()
    assert log.index(removed[0]) < log.index(added[0])  # DEL before ADD: a name could be shared


def test_changing_an_interface_name_renames_by_detach_and_attach(daemon: DaemonRunner, nets: MetaScene) -> None:
    pod = attached(daemon, nets, "web", json.dumps([{"name": "blue", "interface": "blue0"}, {"name": "green"}]))
    before = pod.addresses()
    annotate(nets, pod, json.dumps([{"name": "blue", "interface": "blue1"}, {"name": "green"}]))
    wait_for(settled(nets, pod, ["eth0", "net2", "blue1"]), "blue0 renamed to blue1", daemon)
    after = pod.addresses()
    assert after["net2"] == before["net2"] and after["eth0"] == before["eth0"]
    assert after["blue1"][0].startswith("10.92.0.")
    assert len(nets.reserved_ips("blue")) == 1


def test_a_failing_hot_add_is_rolled_back_reported_and_retried_with_backoff(
    make_daemon: Callable[..., DaemonRunner], nets: MetaScene
) -> None:
    port = random.randint(20000, 60000)  # the node namespace is ours alone
    daemon = make_daemon(metricsAddress=f"127.0.0.1:{port}")
    nets.fake_plugin("npfail", fail_on="ADD")
    broken = nets.conflist("broken", nets.bridge("broken", "nphx0", "10.95.0.0/24"), {"type": "npfail"})
    nets.add_nad("default", "broken", broken)
    pod = attached(daemon, nets, "web", "blue")
    before = pod.addresses()
    patches = status_patches(nets, pod)
    annotate(nets, pod, "blue,broken")
    wait_for(lambda: len(log_lines(daemon, "default/web: retrying in")) >= 3, "three failed attempts", daemon)
    assert pod.addresses() == before and up_links(pod) == ["eth0", "net1"]  # rolled back, the rest untouched
    assert nets.reserved_ips("broken") == []
    assert status_patches(nets, pod) == patches  # nothing changed: network-status stays as it was
    warnings = log_lines(daemon, "WARNING", "HotplugFailed", "net2", "default/broken")
    assert warnings and "fake failure" in warnings[0]
    delays = [line.rsplit(" ", 1)[-1] for line in log_lines(daemon, "default/web: retrying in")][:3]
    assert delays == ["0.5s", "1s", "2s"]  # backoff, never a hot loop
    calls = [c["command"] for c in nets.plugin_calls("npfail")]
    assert calls[:2] == ["ADD", "DEL"]  # each failed ADD is followed by its rollback
    metrics = netns.call(nets.node_ns, lambda: _scrape(port))  # the daemon listens in the node namespace
    failed = re.search(r'^netplex_hotplug_operations_total\{action="add",outcome="failed"\} (\S+)$', metrics, re.M)
    assert failed and float(failed.group(1)) >= 3, metrics


def test_a_sandbox_whose_netns_is_gone_is_cleaned_not_plugged(daemon: DaemonRunner, nets: MetaScene) -> None:
    pod = attached(daemon, nets, "web", "blue")
    patches = status_patches(nets, pod)
    netns.remove(ns_name(pod.netns))  # the sandbox died without a DEL
    annotate(nets, pod, "blue,green")
    records = nets.cni_dir / "hotplug"
    wait_for(lambda: nets.cache_files() == [] and not list(records.glob("*.json")), "the entry cleaned", daemon)
    assert nets.leftovers() == []  # IPs released, host veths gone, no cache file
    assert nets.reserved_ips("green") == []
    assert status_patches(nets, pod) == patches
    assert log_lines(daemon, "hot-plug default/web: netns", "is gone; cleaning its cache entry")


def test_an_edit_during_the_runtimes_del_never_attaches_to_the_sandbox(
    daemon: DaemonRunner, nets: MetaScene
) -> None:
    gate = nets.root / "gate-open"
    _gate_plugin(nets, gate, block_on="DEL")
    gated = nets.conflist("gated", nets.bridge("gated", "nphq0", "10.96.0.0/24"), {"type": "npgate"})
    nets.add_nad("default", "gated", gated)
    pod = attached(daemon, nets, "web", "gated")
    answers: list[Answer] = []
    runtime_del = threading.Thread(target=lambda: answers.append(call(daemon, "DEL", nets, pod)))
    nothing = "hot-plug default/web: no sandbox to attach to"
    runtime_del.start()
    try:
        wait_for(lambda: _gate_calls(nets) == ["ADD", "DEL"], "the runtime's DEL holds the sandbox", daemon)
        patches = status_patches(nets, pod)
        seen = len(log_lines(daemon, nothing))  # the pod's creation, before its ADD, logged one
        annotate(nets, pod, "gated,blue")
        wait_for(lambda: len(log_lines(daemon, nothing)) > seen, "hot-plug finds the sandbox deleted", daemon)
    finally:
        gate.touch()
        runtime_del.join(60)
    assert answers and answers[0].rc == 0, answers
    lines = daemon._read_log().splitlines()
    refused = [i for i, line in enumerate(lines) if nothing in line][seen]
    deleted = next(i for i, line in enumerate(lines) if f"DEL {pod.container_id}" in line and ": ok in" in line)
    assert refused < deleted  # decided while the DEL still ran: the DEL's first step tombstones
    annotate(nets, pod, "gated,blue,green")  # the namespace is still there; an edit now must not attach
    wait_for(lambda: len(log_lines(daemon, nothing)) > seen + 1, "the later edit is refused too", daemon)
    assert pod.links() == {}
    assert nets.leftovers(pod) == []
    assert status_patches(nets, pod) == patches
    assert not list((nets.cni_dir / "hotplug").glob("*.json"))


def test_the_runtimes_del_waits_for_a_hot_plug_in_progress(daemon: DaemonRunner, nets: MetaScene) -> None:
    gate = nets.root / "gate-open"
    _gate_plugin(nets, gate, block_on="ADD")
    gated = nets.conflist("gated", nets.bridge("gated", "nphq0", "10.96.0.0/24"), {"type": "npgate"})
    nets.add_nad("default", "gated", gated)
    pod = attached(daemon, nets, "web", "blue")
    annotate(nets, pod, "blue,gated")
    answers: list[Answer] = []
    runtime_del = threading.Thread(target=lambda: answers.append(call(daemon, "DEL", nets, pod)))
    try:
        wait_for(lambda: _gate_calls(nets) == ["ADD"], "the hot-ADD holds the sandbox", daemon)
        runtime_del.start()
    finally:
        gate.touch()
        runtime_del.join(60)
    assert answers and answers[0].rc == 0, answers
    lines = daemon._read_log().splitlines()
    added = next(i for i, line in enumerate(lines) if "AddedInterface" in line and "net2" in line)
    deleted = next(i for i, line in enumerate(lines) if f"DEL {pod.container_id}" in line and ": ok in" in line)
    assert added < deleted
    assert _gate_calls(nets) == ["ADD", "DEL"]  # the DEL saw the hot-plugged attachment and removed it
    assert pod.links() == {}
    assert nets.leftovers(pod) == []


def test_an_edit_made_while_the_daemon_was_down_is_applied_at_start(daemon: DaemonRunner, nets: MetaScene) -> None:
    pod = attached(daemon, nets, "web", "blue")
    before = pod.addresses()
    assert daemon.stop() == 0
    annotate(nets, pod, "blue,green")
    daemon.start(nets.kubeconfig)
    wait_for(settled(nets, pod, ["eth0", "net1", "net2"]), "the edit caught up", daemon)
    assert pod.addresses()["net1"] == before["net1"]
    assert nets.reserved_ips("green") == [pod.addresses()["net2"][0].split("/")[0]]


def test_check_status_and_del_see_hot_plugged_attachments(daemon: DaemonRunner, nets: MetaScene) -> None:
    pod = attached(daemon, nets, "web", "blue")
    annotate(nets, pod, "blue,green")
    wait_for(settled(nets, pod, ["eth0", "net1", "net2"]), "net2", daemon)
    ok(call(daemon, "CHECK", nets, pod), daemon)
    shown = subprocess.run(
        [NETPLEX, "status", "--cni-dir", str(nets.cni_dir), "--pod", "default/web"],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"},
    ).stdout
    row = next(line.split() for line in shown.splitlines() if "default/green" in line)
    assert row[3:5] == ["net2", "added"] and row[5] == pod.addresses()["net2"][0]
    ip_link_delete(pod, "net2")  # CHECK covers the hot-plugged attachment like any other
    assert call(daemon, "CHECK", nets, pod).rc != 0
    ok(call(daemon, "DEL", nets, pod), daemon)
    assert nets.leftovers(pod) == []


def test_a_pod_on_another_node_is_ignored(daemon: DaemonRunner, nets: MetaScene) -> None:
    away = nets.pod("away", in_api=False)
    nets.api.add_pod("default", "away", uid=away.uid, node_name="node-2", annotations={NETWORKS: "blue"})
    ok(call(daemon, "ADD", nets, away), daemon)  # read live: not in this node's watch
    before = away.addresses()
    patches = status_patches(nets, away)
    local = attached(daemon, nets, "web", "blue")
    annotate(nets, away, "blue,green")
    annotate(nets, local, "blue,green")  # after the other edit in the watch's order
    wait_for(settled(nets, local, ["eth0", "net1", "net2"]), "the local pod's hot-plug", daemon)
    assert away.addresses() == before and sorted(away.links()) == ["eth0", "net1"]
    assert status_patches(nets, away) == patches
    assert not log_lines(daemon, "default/away", "hot-plug")


def test_hotplug_false_leaves_running_pods_alone(make_daemon: Callable[..., DaemonRunner], nets: MetaScene) -> None:
    daemon = make_daemon(hotplug=False)
    pod = attached(daemon, nets, "web", "blue")
    local = nets.pod("other", annotations={NETWORKS: "blue"})
    annotate(nets, pod, "blue,green")
    ok(call(daemon, "ADD", nets, local), daemon)  # its ADD syncs the caches past the edit
    assert sorted(pod.links()) == ["eth0", "net1"]
    assert not log_lines(daemon, "hot-plug")
    assert not (nets.cni_dir / "hotplug").exists()


def ip_link_delete(pod: ScenePod, name: str) -> None:
    subprocess.run(["ip", "-n", pod.netns.rsplit("/", 1)[-1], "link", "del", name], check=True)


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


def _gate_plugin(scene: MetaScene, gate: Path, *, block_on: str) -> None:
    """A chained plugin that logs each command it gets to `npgate.log`; on `block_on` it
    then waits for `gate` to exist (up to a minute)."""
    path = scene.bin_dir / "npgate"
    log = scene.root / "npgate.log"
    path.write_text(
        f"#!{sys.executable} -IS\n"
        "import json, os, sys, time\n"
        "conf = json.load(sys.stdin)\n"
        "command = os.environ['CNI_COMMAND']\n"
        f"open({str(log)!r}, 'a').write(command + '\\n')\n"
        f"if command == {block_on!r}:\n"
        "    deadline = time.monotonic() + 60\n"
        f"    while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        "if command == 'ADD':\n"
        "    print(json.dumps(dict(conf.get('prevResult') or {}, cniVersion=conf['cniVersion'])))\n"
    )
    path.chmod(0o755)


def _gate_calls(scene: MetaScene) -> list[str]:
    log = scene.root / "npgate.log"
    return log.read_text().split() if log.exists() else []
