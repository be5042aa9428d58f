"""kill -9 fault injection: netplex dies at a named step inside an ADD or a DEL (after the
cache write, between delegates, between IPAM and netlink, between a temp file's write and
its rename: cni/faultpoint.py), in thin mode (the plugin process) and in daemon mode (the
daemon). Then the runtime does what it does: DEL, DEL again without the netns, GC; in
daemon mode the daemon comes back before, after or during that DEL. Every trial must end
with 0 pod links, host veths, host-local reservations, cache entries, lock files and temp
files, and a fresh ADD must work at the end.

NETPLEX_FAULT_TRIALS (default 50) trials per mode, kill points drawn with a fixed seed
(NETPLEX_FAULT_SEED). `make faults` runs 1000 per mode; the table of trials, kills and
leaks per kill point is printed at the end of the session.

Temp files of the cache are collected only once older than meta.sweep.STALE_AGE (a live
writer may be about to rename one): before GC, the trial ages them, as the time a real
node spends between the crash and its GC would."""

from __future__ import annotations

import collections
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cni import faultpoint
from tests.faults.conftest import TABLE
from tests.kube.conftest import MetaScene, ScenePod
from tests.kube.runners import Answer, ThinRunner
from tests.kube.runners_daemon import DaemonRunner

pytestmark = [pytest.mark.netns, pytest.mark.faults]

NETWORKS = "k8s.v1.cni.cncf.io/networks"
TRIALS = int(os.environ.get("NETPLEX_FAULT_TRIALS", "50"))
SEED = int(os.environ.get("NETPLEX_FAULT_SEED", "18"))
RUNTIME_RETRIES = 3  # a runtime retries a failed DEL; kubelet does, forever

# (verb the kill happens in, point, n-th time the process reaches it)
ADD_POINTS = [
    *[("ADD", "store.before-rename", n) for n in (1, 2)],  # the cache entry: pending, then added
    ("ADD", "plugin.after-cache-write", 1),
    *[("ADD", point, n) for point in ("attach.before-delegate", "attach.after-delegate", "bridge.after-ipam",
                                       "hostlocal.before-link", "hostlocal.before-hint") for n in (1, 2)],
]
DEL_POINTS = [("DEL", point, n) for point in ("attach.before-delete", "bridge.del-after-links") for n in (1, 2)]
POINTS = ADD_POINTS + DEL_POINTS
RESTARTS = ("before", "after", "during")


def conf(scene: MetaScene, **keys: Any) -> dict[str, Any]:
    return scene.conf(ipamRoots=[str(scene.data_dir)], **keys)


def require_namespaces(*paths: str) -> None:
    """Fail with the real cause when a namespace file stopped being a namespace: another
    process on the machine unmounted it (a recursive or lazy unmount of a shared bind
    of /run/netns propagates), which is not something netplex leaked or did."""
    nsfs = os.stat("/proc/self/ns/net").st_dev
    broken = [path for path in paths if os.path.exists(path) and os.stat(path).st_dev != nsfs]
    if broken:
        pytest.fail(f"namespaces {broken} were unmounted from outside this test (not a netplex leak)")


def leaks(scene: MetaScene, pod: ScenePod) -> collections.Counter[str]:
    node = scene.node_ns if scene.node_ns.startswith("/") else f"/run/netns/{scene.node_ns}"
    require_namespaces(pod.netns, node)
    found: collections.Counter[str] = collections.Counter()
    found["pod links"] = len(pod.links()) if os.path.exists(pod.netns) else 0
    found["node veths"] = len(scene.node_veths())
    found["reserved IPs"] = sum(len(ips) for ips in scene.all_reserved_ips().values())
    found["cache files"] = len([name for name in scene.cache_files() if not name.startswith(".tmp-")])
    locks = scene.cni_dir / "locks"
    found["locks"] = len(list(locks.glob("*.lock"))) if locks.is_dir() else 0
    found["temp files"] = len(temp_files(scene))
    return found


def temp_files(scene: MetaScene) -> list[Path]:
    return [path for top in (scene.cni_dir, scene.data_dir) for path in top.rglob(".tmp-*")]


def age_temp_files(scene: MetaScene) -> None:
    stamp = time.time() - 3600
    for path in temp_files(scene):
        os.utime(path, (stamp, stamp))


def retried(call: Any) -> Answer:
    answer = call()
    for _ in range(RUNTIME_RETRIES - 1):
        if answer.rc == 0:
            break
        answer = call()
    return answer


def run_trial(
    runner: ThinRunner, scene: MetaScene, *, index: int, trial: tuple[str, str, int], restart: str, marker: Path
) -> tuple[bool, collections.Counter[str]]:
    """One trial; returns whether the kill point was reached and what leaked."""
    verb, point, nth = trial
    pod = scene.pod(f"f{index}", annotations={NETWORKS: "blue"})
    kill_env = {faultpoint.FILE_ENV: str(marker), faultpoint.KILL_ENV: f"{point}:{nth}"}
    marker.write_text("")
    failed = 0
    daemon = runner if isinstance(runner, DaemonRunner) else None

    def add(env: dict[str, str] | None = None) -> Answer:
        return runner.call("ADD", conf(scene), container_id=pod.container_id, netns=pod.netns, ifname="eth0",
                           cni_args=pod.cni_args, env=env)

    def delete(netns: str) -> Answer:
        return runner.call("DEL", conf(scene), container_id=pod.container_id, netns=netns, ifname="eth0",
                           cni_args=pod.cni_args)

    if daemon is not None:
        daemon.stop()
        shifted = nth + 1 if point == "store.before-rename" else nth  # the daemon's start writes one file
        os.environ.update({faultpoint.FILE_ENV: str(marker), faultpoint.KILL_ENV: f"{point}:{shifted}"})
        try:
            daemon.start(scene.kubeconfig)
        finally:
            for key in (faultpoint.FILE_ENV, faultpoint.KILL_ENV):
                os.environ.pop(key, None)
        if verb == "ADD":
            add()
        else:
            failed += add().rc != 0
            delete(pod.netns)
        killed = not daemon.running
        daemon.stop()  # reap the killed daemon (a kill -9 leaves no socket clean-up)
        if restart == "before":
            daemon.start(scene.kubeconfig)
            failed += retried(lambda: delete(pod.netns)).rc != 0
        elif restart == "after":
            daemon.autostart = False
            failed += retried(lambda: delete(pod.netns)).rc != 0  # the shim's own DEL
            daemon.autostart = True
            daemon.start(scene.kubeconfig)
        else:
            errors: list[BaseException] = []

            def start() -> None:
                try:
                    daemon.start(scene.kubeconfig)
                except BaseException as exc:  # raised again below, in the test's thread
                    errors.append(exc)

            starter = threading.Thread(target=start)
            daemon.autostart = False
            starter.start()
            failed += retried(lambda: delete(pod.netns)).rc != 0
            starter.join()
            daemon.autostart = True
            if errors:
                raise errors[0]
    else:
        if verb == "ADD":
            answer = add(kill_env)
        else:
            failed += add().rc != 0
            answer = runner.call("DEL", conf(scene), container_id=pod.container_id, netns=pod.netns,
                                 ifname="eth0", cni_args=pod.cni_args, env=kill_env)
        killed = answer.rc == -9
        failed += retried(lambda: delete(pod.netns)).rc != 0
    failed += retried(lambda: delete("")).rc != 0
    age_temp_files(scene)
    gc = retried(lambda: runner.gc(conf(scene, cniVersion="1.1.0", **{"cni.dev/valid-attachments": []})))
    failed += gc.rc != 0
    found = leaks(scene, pod)
    found["failed calls"] = failed
    reached = f" {point}\n" in marker.read_text() or killed
    return reached and killed, found


def fresh_add_works(runner: ThinRunner, scene: MetaScene) -> None:
    pod = scene.pod("fresh", annotations={NETWORKS: "blue"})
    answer = runner.call("ADD", conf(scene), container_id=pod.container_id, netns=pod.netns, ifname="eth0",
                         cni_args=pod.cni_args)
    assert answer.rc == 0, (answer, runner.last_stderr[-2000:])
    assert {"eth0", "net1"} <= set(pod.links())
    assert runner.call("DEL", conf(scene), container_id=pod.container_id, netns=pod.netns, ifname="eth0",
                       cni_args=pod.cni_args).rc == 0
    assert sum(leaks(scene, pod).values()) == 0, leaks(scene, pod)


@pytest.mark.parametrize("mode", ["thin", "daemon"])
def test_kill_9_at_any_step_leaks_nothing_and_a_fresh_add_works(
    mode: str, scene: MetaScene, host_ns: str, tmp_path: Path
) -> None:
    scene.add_nad("default", "blue", scene.bridge("blue", "npfb0", "10.97.0.0/24"))
    workdir = tmp_path / f"runner-{mode}"
    workdir.mkdir()
    runner: ThinRunner
    if mode == "daemon":
        runner = DaemonRunner(node_ns=host_ns, workdir=workdir, daemon_keys={"cniDir": str(scene.cni_dir)})
    else:
        runner = ThinRunner(node_ns=host_ns, workdir=workdir)
    chooser = random.Random(f"{SEED}-{mode}")
    problems: list[str] = []
    try:
        for index in range(TRIALS):
            trial = chooser.choice(POINTS)
            restart = chooser.choice(RESTARTS)
            killed, found = run_trial(
                runner, scene, index=index, trial=trial, restart=restart, marker=tmp_path / "faultpoints.log"
            )
            row = TABLE[(mode, f"{trial[0]} {trial[1]}:{trial[2]}")]
            row["trials"] += 1
            row["killed"] += killed
            row.update(+found)
            if sum(found.values()):
                problems.append(f"trial {index} {trial} restart {restart}: {dict(+found)}")
                break  # the next trial would count this one's leftovers as its own
        fresh_add_works(runner, scene)
    finally:
        if isinstance(runner, DaemonRunner):
            runner.stop()
    assert not problems, problems
    assert sum(row["killed"] for (m, _), row in TABLE.items() if m == mode) > 0
