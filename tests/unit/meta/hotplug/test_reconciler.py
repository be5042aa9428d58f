"""meta.hotplug.reconciler: which pod events lead to a reconcile, of which sandbox, under
the sandbox's lock, with backoff after failures; and the events and counts a reconcile
reports (a recording EventSink). The reconcile itself is faked here: the kube lane
(tests/kube/test_hotplug.py) runs the real one through the daemon."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cni import skel
from meta import cache
from meta.hotplug import apply, events, reconciler, records
from meta.hotplug.records import SandboxRecord
from meta.model import NETWORKS_ANNOTATION
from meta.source import Pod

UID = "5a7e1c1e-0000-4000-8000-000000000001"


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, bool]] = []

    def record(
        self, namespace: str, name: str, uid: str, *, reason: str, message: str, warning: bool = False
    ) -> None:
        self.events.append((reason, message, warning))


class Pods:
    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], Pod] = {}

    def get(self, namespace: str, name: str) -> Pod | None:
        return self.pods.get((namespace, name))

    def put(self, networks: str, *, uid: str = UID, status: str = "") -> Pod:
        annotations = {NETWORKS_ANNOTATION: networks, "k8s.v1.cni.cncf.io/network-status": status}
        pod = Pod("default", "web", uid, annotations)
        self.pods[("default", "web")] = pod
        return pod


class Scene:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cni_dir = str(tmp_path)
        self.pods = Pods()
        self.sink = RecordingSink()
        self.held: list[str] = []
        self.calls: list[tuple[str, str]] = []  # (container ID, annotation) per reconcile
        self.outcomes: list[apply.Outcome] = []
        self.done = threading.Condition()
        monkeypatch.setattr(reconciler, "BACKOFF_FIRST", 0.05)
        monkeypatch.setattr(apply, "reconcile", self._reconcile)
        self.reconciler = reconciler.Reconciler(
            cni_dir=self.cni_dir, pods=self.pods, source=None, hold=self._hold, sink=self.sink,  # type: ignore[arg-type]
        )

    @contextlib.contextmanager
    def _hold(self, container_id: str, cni_dir: str, timeout: float) -> Iterator[None]:
        self.held.append(container_id)
        yield

    def _reconcile(self, record: SandboxRecord, pod: Pod, **kwargs: Any) -> apply.Outcome:
        with self.done:
            self.calls.append((record.container_id, pod.annotations[NETWORKS_ANNOTATION]))
            self.done.notify_all()
            return self.outcomes.pop(0) if self.outcomes else apply.Outcome()

    def sandbox(self, container_id: str, *, added_at: float = 1.0, uid: str = UID) -> None:
        cache.write(self.cni_dir, cache.CacheEntry(
            container_id=container_id, ifname="eth0", pod_namespace="default", pod_name="web", pod_uid=uid,
        ))
        records.write(self.cni_dir, SandboxRecord(
            container_id=container_id, ifname="eth0", config={}, added_at=added_at,
        ))

    def wait_calls(self, count: int) -> None:
        with self.done:
            assert self.done.wait_for(lambda: len(self.calls) >= count, 10), self.calls


@pytest.fixture
def scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scene]:
    made = Scene(tmp_path, monkeypatch)
    made.reconciler.start()
    try:
        yield made
    finally:
        made.reconciler.stop()


def test_a_selection_edit_reconciles_the_sandbox_under_its_lock(scene: Scene) -> None:
    scene.sandbox("c1")
    scene.reconciler.pod_changed("MODIFIED", scene.pods.put("blue,green"))
    scene.wait_calls(1)
    assert scene.calls == [("c1", "blue,green")] and scene.held == ["c1"]


def test_a_change_that_leaves_the_selection_alone_queues_nothing(scene: Scene) -> None:
    scene.sandbox("c1")
    scene.reconciler.pod_changed("LISTED", scene.pods.put("blue"))
    scene.wait_calls(1)
    scene.reconciler.pod_changed("MODIFIED", scene.pods.put("blue", status="[...]"))  # network-status patch
    scene.reconciler.pod_changed("MODIFIED", scene.pods.put("blue,green"))
    scene.wait_calls(2)
    assert [annotation for _, annotation in scene.calls] == ["blue", "blue,green"]


def test_the_newest_sandbox_of_the_pods_uid_is_the_one_reconciled(scene: Scene) -> None:
    scene.sandbox("old", added_at=1.0)
    scene.sandbox("new", added_at=2.0)
    scene.sandbox("other-pod", added_at=3.0, uid="another-uid")
    scene.reconciler.pod_changed("MODIFIED", scene.pods.put("blue"))
    scene.wait_calls(1)
    assert scene.calls == [("new", "blue")]


def test_a_deleted_sandbox_is_never_reconciled(scene: Scene, caplog: pytest.LogCaptureFixture) -> None:
    scene.sandbox("c1")
    scene.reconciler.sandbox_deleted(scene.cni_dir, "c1", "eth0")
    caplog.set_level(logging.DEBUG, logger=reconciler.__name__)
    scene.reconciler.pod_changed("MODIFIED", scene.pods.put("blue,green"))
    _wait(lambda: "no sandbox to attach to" in caplog.text)
    assert scene.calls == [] and scene.held == []
    assert records.list_records(scene.cni_dir) == []


def test_a_failed_reconcile_is_retried_with_a_doubling_backoff(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=reconciler.__name__)
    scene.sandbox("c1")
    scene.outcomes = [apply.Outcome(retry=True) for _ in range(3)]
    scene.reconciler.pod_changed("MODIFIED", scene.pods.put("blue,broken"))
    scene.wait_calls(4)
    delays = [r.getMessage().rsplit(" ", 1)[-1] for r in caplog.records if "retrying in" in r.getMessage()]
    assert delays == ["0.05s", "0.1s", "0.2s"]  # then success: no more retries
    assert len(scene.calls) == 4


def test_an_add_is_recorded_and_reconciled_when_the_pod_was_edited_before_it_finished(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=reconciler.__name__)
    scene.reconciler.pod_changed("ADDED", scene.pods.put("blue"))
    scene.reconciler.pod_changed("MODIFIED", scene.pods.put("blue,green"))  # while the sandbox is created
    _wait(lambda: "no sandbox to attach to" in caplog.text)
    cache.write(scene.cni_dir, cache.CacheEntry(
        container_id="c9", ifname="eth0", pod_namespace="default", pod_name="web", pod_uid=UID,
    ))
    call = skel.CmdArgs(command="ADD", container_id="c9", ifname="eth0", args="K8S_POD_NAME=web", path=("/opt/cni",))
    scene.reconciler.sandbox_added(scene.cni_dir, call, {"cniVersion": "1.0.0"})
    scene.wait_calls(1)
    assert scene.calls == [("c9", "blue,green")]
    [record] = records.list_records(scene.cni_dir)
    assert (record.container_id, record.cni_path, record.config) == ("c9", ["/opt/cni"], {"cniVersion": "1.0.0"})


def test_an_add_of_a_pod_never_edited_queues_no_reconcile(scene: Scene, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=reconciler.__name__)
    scene.reconciler.pod_changed("ADDED", scene.pods.put("blue"))
    _wait(lambda: "no sandbox to attach to" in caplog.text)
    cache.write(scene.cni_dir, cache.CacheEntry(
        container_id="c9", ifname="eth0", pod_namespace="default", pod_name="web", pod_uid=UID,
    ))
    call = skel.CmdArgs(command="ADD", container_id="c9", ifname="eth0", args="K8S_POD_NAME=web")
    scene.reconciler.sandbox_added(scene.cni_dir, call, {"cniVersion": "1.0.0"})
    scene.reconciler.pod_changed("MODIFIED", scene.pods.put("blue,red"))  # a later edit: the one reconcile
    scene.wait_calls(1)
    assert scene.calls == [("c9", "blue,red")]


def test_a_failure_reports_a_warning_event_and_a_count() -> None:
    sink, counted = RecordingSink(), []
    outcome = apply.Outcome()
    note = apply._Reporter(Pod("default", "web", UID), sink, lambda a, o: counted.append((a, o)), outcome)
    note.added("net2", "default/green")
    note.failed("add", "cannot add interface net3 of network default/broken: fake failure")
    assert sink.events == [
        (events.ADDED_INTERFACE, "added interface net2 to network default/green", False),
        (events.HOTPLUG_FAILED, "cannot add interface net3 of network default/broken: fake failure", True),
    ]
    assert counted == [("add", "ok"), ("add", "failed")]
    assert outcome.retry and outcome.changed and outcome.added == ["net2"]


def _wait(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)
