"""meta.devices.kubelet, the pod-resources client, over a real gRPC unix socket to the
double: Get for one pod, List when the kubelet has no Get, the short per-pod cache of a
long-lived client, and the errors (error 11 naming the socket) for a missing or slow
kubelet, bounded by the caller's deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni.errors import CniError, Code
from meta.devices import kubelet
from tests.kube.podresources_double import PodResourcesDouble

VF = "example.com/vf"


@pytest.fixture
def double(tmp_path: Path) -> Iterator[PodResourcesDouble]:
    with PodResourcesDouble(tmp_path / "kubelet.sock") as made:
        made.allocate("default", "cnf", VF, ["0000:3b:02.1"], container="a")
        made.allocate("default", "cnf", VF, ["0000:3b:02.0"], container="b")
        made.allocate("default", "cnf", "example.com/other", ["o1"], container="b")
        yield made


def soon() -> float:
    return time.monotonic() + 10.0


def test_get_answers_every_resource_of_every_container(double: PodResourcesDouble) -> None:
    client = kubelet.Client(double.socket_path)
    try:
        devices = client.pod_devices("default", "cnf", deadline=soon())
    finally:
        client.close()
    assert devices == {VF: ("0000:3b:02.1", "0000:3b:02.0"), "example.com/other": ("o1",)}
    assert double.calls == ["Get"]


def test_a_kubelet_without_get_is_asked_with_list_from_then_on(tmp_path: Path) -> None:
    with PodResourcesDouble(tmp_path / "old.sock", get_supported=False) as old:
        old.allocate("default", "cnf", VF, ["d1"])
        old.allocate("default", "other", VF, ["d2"])
        client = kubelet.Client(old.socket_path)
        try:
            assert client.pod_devices("default", "cnf", deadline=soon()) == {VF: ("d1",)}
            assert client.pod_devices("default", "other", deadline=soon()) == {VF: ("d2",)}
        finally:
            client.close()
        assert old.calls == ["Get", "List", "List"]


def test_a_pod_the_kubelet_does_not_know_has_no_devices(double: PodResourcesDouble) -> None:
    client = kubelet.Client(double.socket_path)
    try:
        assert client.pod_devices("default", "nobody", deadline=soon()) == {}
    finally:
        client.close()
    assert double.calls == ["Get", "List"]  # Get's "not found" is a plain error: List decides


def test_one_client_reuses_its_connection_and_caches_a_pod_briefly(double: PodResourcesDouble) -> None:
    now = [100.0]
    client = kubelet.Client(double.socket_path, clock=lambda: now[0])
    try:
        first = client.pod_devices("default", "cnf", deadline=now[0] + 10.0)
        assert client.pod_devices("default", "cnf", deadline=now[0] + 10.0) == first
        assert double.calls == ["Get"]
        now[0] += kubelet.CACHE_SECONDS
        client.pod_devices("default", "cnf", deadline=now[0] + 10.0)
        assert double.calls == ["Get", "Get"]
    finally:
        client.close()


def test_a_missing_socket_is_error_11_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing.sock")
    with pytest.raises(CniError) as caught:
        kubelet.Client(missing).pod_devices("default", "cnf", deadline=soon())
    assert caught.value.code == Code.TRY_AGAIN_LATER and missing in caught.value.msg


def test_a_slow_kubelet_is_cut_at_the_deadline(tmp_path: Path) -> None:
    with PodResourcesDouble(tmp_path / "slow.sock", delay=3.0) as slow:
        slow.allocate("default", "cnf", VF, ["d1"])
        client = kubelet.Client(slow.socket_path)
        try:
            with pytest.raises(CniError) as caught:
                client.pod_devices("default", "cnf", deadline=time.monotonic() + 0.5)
        finally:
            client.close()
    assert caught.value.code == Code.TRY_AGAIN_LATER
    assert slow.socket_path in caught.value.msg and "did not answer in time" in caught.value.msg
