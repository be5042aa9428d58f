"""netplex-ipam across five real `netplex daemon`s, each with its own nodeName, against
one API double: 200 pods ADDed at once through the real shim and DELed; then the same
while daemons are killed with SIGKILL and restarted mid-ADD, followed by the runtime's
DEL and GC; and the daemon's reconciler freeing the address of a pod that is gone.

The pods' cluster network is netplex-ipam alone (no link plugin), so that 200 sandboxes
cost no kernel work: what is under test is allocation (tests/kube/test_ipam_kernel.py
has the kernel). Nothing here needs a network namespace, so daemons and shims run as
plain processes (no `ip netns exec`, which flakes when other processes add namespaces
at the same moment), talking to the API double on loopback. Set NETPLEX_IPAM_LONG=1 for
a longer profile (more pods, more kills)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube import runners_daemon
from tests.kube.apidouble import ApiDouble
from tests.kube.ipam_scene import IpamScene
from tests.kube.runners import CALL_TIMEOUT, NETPLEX, Answer
from tests.kube.runners_daemon import DaemonRunner

pytestmark = pytest.mark.kube

LONG = bool(os.environ.get("NETPLEX_IPAM_LONG"))
PODS = 400 if LONG else 200
KILLS = 12 if LONG else 4
NODES = [f"node-{i}" for i in range(1, 6)]


class HostDaemon(DaemonRunner):
    """DaemonRunner's daemon as a plain process (no namespace: it makes no link)."""

    def start(self, kubeconfig: str = "") -> None:
        if self.running:
            return
        config = {"socketPath": self.socket_path, "concurrency": self.concurrency, "logLevel": "info",
                  "kubeconfig": kubeconfig, **self.daemon_keys}
        config_path = self.workdir / "daemon.json"
        config_path.write_text(json.dumps(config))
        self._log = open(self.workdir / "daemon.log", "ab")  # noqa: SIM115 - lives as long as the daemon
        environ = {key: value for key, value in os.environ.items() if not key.startswith(("CNI_", "KUBERNETES_"))}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "meta.daemon", "--config", str(config_path)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=environ,
        )
        self._kubeconfig = kubeconfig
        self.wait_serving(runners_daemon.START_TIMEOUT)
        self.wait_ready(30)


class Cluster:
    """Five daemons (one per node name) and pods."""

    def __init__(self, api: ApiDouble, root: Path, ipam: IpamScene, runners: dict[str, DaemonRunner]) -> None:
        self.api = api
        self.root = root
        self.ipam = ipam
        self.runners = runners
        self.pods: dict[str, tuple[str, str, str]] = {}  # container ID -> (node, name, uid)

    def conf(self, node: str, **keys: Any) -> dict[str, Any]:
        return {
            "cniVersion": "1.1.0", "name": "netplex", "type": "netplex", "kubeconfig": self.ipam.kubeconfig,
            "clusterNetwork": "ipam-only", "cniDir": str(self.root / node / "cni"), **keys,
        }

    def new_pod(self, node: str) -> str:
        name, uid = f"p-{uuid.uuid4().hex[:10]}", str(uuid.uuid4())
        self.api.add_pod("default", name, uid=uid, node_name=node)
        container_id = f"c{uuid.uuid4().hex}"
        self.pods[container_id] = (node, name, uid)
        return container_id

    def gc(self, node: str) -> Answer:
        """The runtime's GC through node's shim: no attachment is valid any more."""
        env = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": "GC", "CNI_PATH": str(Path(NETPLEX).parent)}
        conf = self.conf(node, **{"cni.dev/valid-attachments": []})
        proc = subprocess.run(
            [NETPLEX], input=self.runners[node].stdin_for("GC", conf), env=env, capture_output=True,
            timeout=CALL_TIMEOUT, check=False,
        )
        out = proc.stdout.decode(errors="replace")
        return Answer(proc.returncode, json.loads(out) if out.strip() else proc.stderr.decode(errors="replace"))

    def cni(self, command: str, container_id: str) -> Answer:
        """One call through the shim, as DaemonRunner.call makes it, but keeping this
        call's stderr in the answer (the runner's `last_stderr` is shared by threads)."""
        node, name, uid = self.pods[container_id]
        runner = self.runners[node]
        env = {
            "PATH": os.environ.get("PATH", ""), "CNI_COMMAND": command, "CNI_CONTAINERID": container_id,
            "CNI_IFNAME": "eth0", "CNI_PATH": str(Path(NETPLEX).parent),
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};K8S_POD_UID={uid}",
        }
        if command == "ADD":
            env["CNI_NETNS"] = f"/var/run/netns/absent-{container_id[:12]}"
        proc = subprocess.run(
            [NETPLEX], input=runner.stdin_for(command, self.conf(node)),
            env=env, capture_output=True, timeout=CALL_TIMEOUT, check=False,
        )
        out = proc.stdout.decode(errors="replace")
        doc = json.loads(out) if out.strip() else {"stderr": proc.stderr.decode(errors="replace")[-2000:]}
        return Answer(proc.returncode, doc)

    def add_all(self, container_ids: list[str]) -> dict[str, Answer]:
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            return dict(zip(container_ids, pool.map(lambda c: self.cni("ADD", c), container_ids), strict=True))

    def del_all(self, container_ids: list[str]) -> dict[str, Answer]:
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            return dict(zip(container_ids, pool.map(lambda c: self.cni("DEL", c), container_ids), strict=True))


@pytest.fixture
def cluster(api_double: ApiDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    monkeypatch.setattr(runners_daemon, "START_TIMEOUT", 180.0)  # five daemons start at once on a busy machine
    ipam = IpamScene(api_double, tmp_path / "ipam-scene")
    ipam_conf = {
        "cniVersion": "1.1.0", "name": "ipamnet", "type": "netplex-ipam",
        "ipam": ipam.ipam(range="10.78.0.0/24", gateway="10.78.0.1"),
    }
    api_double.add_nad("kube-system", "ipam-only", config=json.dumps(ipam_conf))
    runners: dict[str, DaemonRunner] = {}
    try:
        for node in NODES:
            ipam.add_node(node)
            workdir = tmp_path / node
            workdir.mkdir(parents=True)
            runner = HostDaemon(node_ns="-", workdir=workdir, daemon_keys={"nodeName": node})
            runner.sync_before_add = False  # type: ignore[misc] - 200 concurrent ADDs: no relist each
            runner.autostart = False
            runners[node] = runner
        with concurrent.futures.ThreadPoolExecutor(len(NODES)) as pool:  # a start costs seconds: in parallel
            list(pool.map(lambda runner: runner.start(ipam.kubeconfig), runners.values()))
        yield Cluster(api_double, tmp_path, ipam, runners)
    finally:
        for runner in runners.values():
            runner.stop(signal.SIGTERM)


def _addresses(answers: dict[str, Answer]) -> dict[str, str]:
    return {cid: answer.doc["ips"][0]["address"] for cid, answer in answers.items() if answer.rc == 0}


def test_two_hundred_pods_on_five_nodes_get_unique_addresses_and_all_are_released(cluster: Cluster) -> None:
    container_ids = [cluster.new_pod(NODES[i % len(NODES)]) for i in range(PODS)]
    answers = cluster.add_all(container_ids)
    failures = {cid: answer.doc for cid, answer in answers.items() if answer.rc != 0}
    assert failures == {}
    got = _addresses(answers)
    assert len(set(got.values())) == PODS, "duplicate addresses"
    records = cluster.ipam.records()
    assert {record["container_id"]: f"{ip}/24" for ip, record in records.items()} == got
    owners = cluster.ipam.block_owners()
    for cid, address in got.items():
        node = cluster.pods[cid][0]
        assert records[address.split("/")[0]]["container_id"] == cid
        assert node in owners.values()
    deleted = cluster.del_all(container_ids)
    assert {cid: answer.doc for cid, answer in deleted.items() if answer.rc != 0} == {}
    assert cluster.ipam.records() == {}


def test_daemons_killed_mid_add_leave_no_duplicate_and_del_and_gc_leave_nothing(cluster: Cluster) -> None:
    container_ids = [cluster.new_pod(NODES[i % len(NODES)]) for i in range(PODS)]
    done = threading.Event()
    kills: list[str] = []

    def killer() -> None:
        rng = random.Random(14)
        while not done.is_set() and len(kills) < KILLS:
            if done.wait(rng.uniform(0.3, 1.0)):
                return
            node = rng.choice(NODES)
            runner = cluster.runners[node]
            runner.stop(signal.SIGKILL)
            kills.append(node)
            runner.start(cluster.ipam.kubeconfig)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        answers = cluster.add_all(container_ids)
    finally:
        done.set()
        thread.join()
    assert kills, "no daemon was killed during the ADDs"
    got = _addresses(answers)
    assert len(set(got.values())) == len(got), "duplicate addresses"
    assert len(got) > PODS // 2, f"only {len(got)} ADDs succeeded"
    records = cluster.ipam.records()
    for cid, address in got.items():  # every address handed out is recorded for its pod
        assert records[address.split("/")[0]]["container_id"] == cid
    for runner in cluster.runners.values():  # the restarted daemons serve again
        runner.wait_ready(30)
    deleted = cluster.del_all(container_ids)  # the runtime DELs every sandbox, failed ADD or not
    assert {cid: answer.doc for cid, answer in deleted.items() if answer.rc != 0} == {}
    # A daemon killed between a temp file's write and its rename leaves the temp file, and
    # GC removes one only once it is stale (meta.sweep.STALE_AGE, far beyond any write):
    # age them as time would (as the faults lane does), so GC must find and remove them.
    stamp = time.time() - 3600
    for path in [*cluster.root.glob("node-*/cni/cache/.tmp-*"), *cluster.ipam.data_dir.glob("*/*/.tmp-*")]:
        os.utime(path, (stamp, stamp))
    for node in cluster.runners:
        answer = cluster.gc(node)
        assert answer.rc == 0, answer.doc
    assert cluster.ipam.records() == {}
    assert not list(cluster.root.glob("node-*/cni/cache/*"))
    assert not list(cluster.ipam.data_dir.glob("*/*/.tmp-*")), "GC left half-written records"


def test_the_daemon_frees_the_address_of_a_pod_that_is_gone_but_not_of_a_live_one(
    api_double: ApiDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NETPLEX_IPAM_RECONCILE_INTERVAL", "0.3")
    monkeypatch.setenv("NETPLEX_IPAM_RECONCILE_GRACE", "1")
    monkeypatch.setattr(runners_daemon, "START_TIMEOUT", 180.0)
    ipam = IpamScene(api_double, tmp_path / "ipam-scene")
    ipam.add_node("node-1")
    api_double.add_nad("kube-system", "ipam-only", config=json.dumps({
        "cniVersion": "1.1.0", "name": "ipamnet", "type": "netplex-ipam", "ipam": ipam.ipam(range="10.79.0.0/24"),
    }))
    (tmp_path / "node-1").mkdir()
    runner = HostDaemon(node_ns="-", workdir=tmp_path / "node-1", daemon_keys={"nodeName": "node-1"})
    cluster = Cluster(api_double, tmp_path, ipam, {"node-1": runner})
    try:
        runner.start(ipam.kubeconfig)
        live, gone = cluster.new_pod("node-1"), cluster.new_pod("node-1")
        answers = cluster.add_all([live, gone])
        assert all(answer.rc == 0 for answer in answers.values()), answers
        got = _addresses(answers)
        api_double.delete_pod("default", cluster.pods[gone][1])  # gone from the API, no CNI DEL
        deadline = time.monotonic() + 30
        while got[gone].split("/")[0] in ipam.records():
            assert time.monotonic() < deadline, "the reconciler did not free the gone pod's address"
            time.sleep(0.1)
        assert ipam.records()[got[live].split("/")[0]]["container_id"] == live
        log = (tmp_path / "node-1" / "daemon.log").read_text()
        assert "reconciler freed" in log and json.dumps(got[live].split("/")[0]) not in log
    finally:
        runner.close()
