"""meta/policy/engine.py with a fake API and a recording `apply`: which pods get
transactions, set updates for peers, retries and the ADD hook's errors. (The kernel's
side is judged by tests/kube/test_policy_traffic.py.)"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni.errors import CniError, Code
from meta import cache
from meta.model import NETWORK_STATUS_ANNOTATION
from meta.policy import nft, report
from meta.policy.engine import PolicyEngine
from meta.source import Namespace, Pod, PolicyObject
from meta.watchcache import WatchEvent

NET = "default/net-a"
POLICY_FOR = "k8s.v1.cni.cncf.io/policy-for"


class _Idle:
    """A watch with no events that ends when stopped."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent[Any]]:
        self._stop.wait(30)
        return iter(())

    def stop(self) -> None:
        self._stop.set()


class FakeApi:
    def __init__(self) -> None:
        self.pods: list[Pod] = []
        self.policies: list[PolicyObject] = []

    def get_pod(self, namespace: str, name: str) -> Pod:
        return next(p for p in self.pods if (p.namespace, p.name) == (namespace, name))

    def list_all_pods_versioned(self) -> tuple[list[Pod], str]:
        return list(self.pods), "1"

    def watch_all_pods(self, *, resource_version: str, timeout: int) -> _Idle:
        return _Idle()

    def list_namespaces_versioned(self) -> tuple[list[Namespace], str]:
        return [Namespace("default")], "1"

    def watch_namespaces(self, *, resource_version: str, timeout: int) -> _Idle:
        return _Idle()

    def list_policies_versioned(self) -> tuple[list[PolicyObject], str]:
        return list(self.policies), "1"

    def watch_policies(self, *, resource_version: str, timeout: int) -> _Idle:
        return _Idle()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []
        self.fail = False

    def __call__(self, netns: str, commands: list[dict[str, Any]]) -> None:
        if self.fail:
            raise nft.NftError("refused")
        self.calls.append((netns, commands))


def _pod(name: str, ip: str, **labels: str) -> Pod:
    status = json.dumps([{"name": NET, "ips": [ip]}])
    return Pod("default", name, uid=f"uid-{name}", labels=labels, annotations={NETWORK_STATUS_ANNOTATION: status})


def _record(cni_dir: Path, pod: Pod, ip: str) -> str:
    container_id = f"c-{pod.name}"
    cache.write(str(cni_dir), cache.CacheEntry(
        container_id=container_id, ifname="eth0", netns=f"/run/netns/{pod.name}", pod_namespace="default",
        pod_name=pod.name, pod_uid=pod.uid,
        attachments=[cache.CachedAttachment(network=NET, ifname="net1", conflist={}, state="added",
                                            result={"ips": [{"address": f"{ip}/24"}]})],
    ))
    return container_id


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[tuple[FakeApi, Recorder, PolicyEngine, Path]]:
    api, recorder = FakeApi(), Recorder()
    api.policies.append(PolicyObject("default", "db", {POLICY_FOR: NET}, {
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}],
    }))
    for name, ip, labels in (("db", "10.0.0.2", {"app": "db"}), ("web", "10.0.0.3", {})):
        pod = _pod(name, ip, **labels)
        api.pods.append(pod)
        _record(tmp_path, pod, ip)
    engine = PolicyEngine(api, cni_dirs=[str(tmp_path)], apply=recorder)
    engine.caches.start()
    assert engine.caches.wait_synced(10, clock=time.monotonic)
    try:
        yield api, recorder, engine, tmp_path
    finally:
        engine.stop()


def test_only_selected_pods_get_a_table_and_unselected_ones_are_cleared_once(scene: Any) -> None:
    _api, recorder, engine, cni_dir = scene
    assert engine.reconcile() == 0
    by_netns = dict(recorder.calls)
    assert any("add" in c and "rule" in c["add"] for c in by_netns["/run/netns/db"])
    assert [list(c) for c in by_netns["/run/netns/web"]] == [["add"], ["delete"]], "stale table removed"
    assert report.read(str(cni_dir), "c-db") == {"net1": ["default/db"]}
    recorder.calls.clear()
    assert engine.reconcile() == 0 and recorder.calls == [], "nothing changed: no transaction"


def test_a_peer_joining_is_one_set_update_in_the_selected_pod(scene: Any) -> None:
    _api, recorder, engine, _ = scene
    engine.reconcile()
    recorder.calls.clear()
    engine.caches.pods._objects[("default", "new")] = _pod("new", "10.0.0.9", role="client")
    assert engine.reconcile() == 0
    [(netns, commands)] = recorder.calls
    assert netns == "/run/netns/db"
    assert [next(iter(c)) for c in commands] == ["flush", "add"]
    assert commands[1]["add"]["element"]["elem"] == ["10.0.0.9"]


def test_a_failed_transaction_is_counted_and_replaced_in_full_next_time(scene: Any) -> None:
    _api, recorder, engine, _ = scene
    recorder.fail = True
    assert engine.reconcile() == 2
    recorder.fail = False
    assert engine.reconcile() == 0
    assert {netns for netns, _ in recorder.calls} == {"/run/netns/db", "/run/netns/web"}


def test_the_add_hook_fails_the_add_when_nft_refuses(scene: Any) -> None:
    _api, recorder, engine, cni_dir = scene
    recorder.fail = True
    with pytest.raises(CniError) as caught:
        engine.enforce_sandbox(str(cni_dir), "c-db", "eth0", timeout=5)
    assert caught.value.code == Code.INTERNAL and "cannot program default/db" in caught.value.msg
    recorder.fail = False
    engine.enforce_sandbox(str(cni_dir), "c-db", "eth0", timeout=5)
    assert [netns for netns, _ in recorder.calls] == ["/run/netns/db"]
