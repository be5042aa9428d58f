"""meta.events: the recorder never blocks the caller, rate-limits per pod as client-go's
spam filter does (burst 25, one token per 300 s), counts every outcome, and a thin
plugin's flush waits no longer than its budget."""

from __future__ import annotations

import threading
from typing import Any

from meta import events


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_27th_event_on_one_pod_is_dropped_until_a_token_refills() -> None:
    posted: list[dict[str, Any]] = []
    clock = Clock()
    recorder = events.EventRecorder(lambda: lambda ns, body: posted.append(body), clock=clock)
    for index in range(27):
        recorder.record("default", "web", "u1", reason="AddedInterface", message=f"Add net{index} []")
    recorder.record("default", "other", "u2", reason="AddedInterface", message="Add eth0 []")
    assert recorder.flush(10)
    assert len(posted) == events.SPAM_BURST + 1  # 25 on web, 1 on other
    assert recorder.counts[("AddedInterface", "dropped")] == 2
    clock.now += 300  # one token back
    recorder.record("default", "web", "u1", reason="AddedInterface", message="Add net99 []")
    assert recorder.flush(10)
    assert posted[-1]["message"] == "Add net99 []"
    recorder.close()


def test_record_returns_at_once_while_the_api_hangs_and_flush_keeps_to_its_budget() -> None:
    release = threading.Event()
    outcomes: list[tuple[str, str]] = []
    recorder = events.EventRecorder(lambda: lambda ns, body: release.wait(30),
                                    count=lambda reason, outcome: outcomes.append((reason, outcome)))
    recorder.record("default", "web", "u1", reason="AddedInterface", message="Add eth0 []")
    assert recorder.flush(0.01) is False  # the POST hangs: the budget bounds the wait
    release.set()
    assert recorder.flush(10)
    assert outcomes == [("AddedInterface", "posted")]
    recorder.close()


def test_a_failing_api_is_counted_and_never_raises() -> None:
    def refuse(namespace: str, body: dict[str, Any]) -> None:
        raise ConnectionError("API down")

    recorder = events.EventRecorder(lambda: refuse)
    recorder.record("default", "web", "u1", reason="FailedAddInterface", message="boom", warning=True)
    assert recorder.flush(10)
    assert recorder.counts == {("FailedAddInterface", "failed"): 1}
    recorder.close()


def test_an_event_names_the_pod_and_its_type() -> None:
    posted: list[dict[str, Any]] = []
    recorder = events.EventRecorder(lambda: lambda ns, body: posted.append(body), host="node-1")
    recorder.record("ns1", "web", "u1", reason="FailedAddInterface", message="net1: nope", warning=True)
    assert recorder.flush(10)
    event = posted[0]
    assert event["type"] == "Warning" and event["reason"] == "FailedAddInterface"
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "ns1", "name": "web",
                                       "uid": "u1"}
    assert event["source"] == {"component": "netplex", "host": "node-1"}
    assert event["metadata"]["name"].startswith("web.")
    recorder.close()


def test_the_message_is_multus_wording() -> None:
    assert events.added_interface_message("net1", ["10.1.1.5/24", "fd00::5/64"], "default/macvlan") == (
        "Add net1 [10.1.1.5/24 fd00::5/64] from default/macvlan")
