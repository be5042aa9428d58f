"""The daemon's watch caches over real HTTP: meta.k8s's versioned lists and watches,
meta.watchcache's list-then-watch loop, and meta.daemon_source's cache-first reads,
against the API double (no namespaces, no root)."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from meta import config, k8s
from meta.daemon_source import CachedSource, KubeSources
from meta.source import NetworkAttachment, NotFound, Pod, Unavailable
from meta.watchcache import Expired, WatchCache, WatchEvent
from tests.kube.apidouble import ApiDouble

NODE = "node-1"
PODS_PATH = "/api/v1/pods"
NADS_PATH = "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions"
CONF = '{"cniVersion": "1.0.0", "type": "bridge"}'


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def counted(kubeconfig: str) -> Iterator[tuple[k8s.Kube, collections.Counter[str]]]:
    verbs: collections.Counter[str] = collections.Counter()
    kube = k8s.Kube.from_kubeconfig(kubeconfig, timeout=2.0, on_request=lambda verb: verbs.update([verb]))
    try:
        yield kube, verbs
    finally:
        kube.close()


@pytest.fixture
def sources(kubeconfig: str) -> Iterator[KubeSources]:
    made = KubeSources.connect(kubeconfig=kubeconfig, node_name=NODE, watch_timeout=30)
    made.start()
    try:
        yield made
    finally:
        made.stop()


# -- meta.k8s ------------------------------------------------------------------------------


def test_versioned_lists_return_the_lists_resource_version(kube: k8s.Kube, api_double: ApiDouble) -> None:
    api_double.add_pod("default", "web", node_name=NODE)
    api_double.add_pod("default", "elsewhere", node_name="node-2")
    created = api_double.add_nad("default", "blue", config=CONF)
    pods, pods_version = kube.list_pods_versioned(NODE)
    nads, nads_version = kube.list_attachments_versioned()
    assert [pod.name for pod in pods] == ["web"]
    assert [nad.name for nad in nads] == ["blue"]
    assert pods_version == nads_version == created["metadata"]["resourceVersion"]


def test_watch_yields_changes_after_the_version(kube: k8s.Kube, api_double: ApiDouble) -> None:
    _, version = kube.list_attachments_versioned()
    api_double.add_nad("default", "blue", config=CONF)
    api_double.update_nad("default", "blue", config='{"cniVersion": "1.0.0", "type": "macvlan"}')
    api_double.delete_nad("default", "blue")
    watch = kube.watch_attachments(resource_version=version, timeout=1)
    events = [(event.type, event.obj.name if event.obj else None) for event in watch]
    assert events == [("ADDED", "blue"), ("MODIFIED", "blue"), ("DELETED", "blue")]


def test_watch_from_a_compacted_version_is_expired(kube: k8s.Kube, api_double: ApiDouble) -> None:
    _, version = kube.list_pods_versioned(NODE)
    api_double.add_pod("default", "web")
    api_double.compact()
    with pytest.raises(Expired, match="too old"):
        list(kube.watch_pods(NODE, resource_version=version, timeout=5))


def test_stop_ends_a_waiting_watch_at_once(kube: k8s.Kube, api_double: ApiDouble) -> None:
    _, version = kube.list_pods_versioned(NODE)
    watch = kube.watch_pods(NODE, resource_version=version, timeout=30)
    threading.Timer(0.2, watch.stop).start()
    started = time.monotonic()
    assert list(watch) == []
    assert time.monotonic() - started < 20  # the watch would last 30 s: stop ended it


def test_watch_of_a_stopped_server_is_unavailable(kube: k8s.Kube, api_double: ApiDouble) -> None:
    api_double.stop()
    with pytest.raises(Unavailable, match="Connection refused"):
        list(kube.watch_attachments(resource_version="1", timeout=1))


def test_every_request_is_counted_by_verb(
    counted: tuple[k8s.Kube, collections.Counter[str]], api_double: ApiDouble
) -> None:
    kube, verbs = counted
    api_double.add_pod("default", "web")
    api_double.add_nad("default", "blue", config=CONF)
    pod = kube.get_pod("default", "web")
    kube.get_attachment("default", "blue")
    kube.list_pods_versioned(NODE)
    _, version = kube.list_attachments_versioned()
    list(kube.watch_attachments(resource_version=version, timeout=1))
    kube.set_network_status(pod, [])
    assert verbs == {"get": 2, "list": 2, "watch": 1, "patch": 1}


# -- meta.watchcache ----------------------------------------------------------------------


def test_cache_lists_then_follows_the_watch(sources: KubeSources, api_double: ApiDouble) -> None:
    assert sources.pods.wait_synced(30) and sources.attachments.wait_synced(30)
    api_double.add_pod("default", "web", annotations={"a": "1"})
    api_double.add_pod("default", "elsewhere", node_name="node-2")
    api_double.add_nad("team", "blue", config=CONF)
    eventually(lambda: sources.pods.get("default", "web") is not None)
    eventually(lambda: sources.attachments.get("team", "blue") is not None)
    assert sources.pods.get("default", "elsewhere") is None  # another node's pod
    api_double.delete_nad("team", "blue")
    eventually(lambda: sources.attachments.get("team", "blue") is None)
    assert sources.sizes() == {"pods": 1, "network-attachment-definitions": 0}


def test_cache_lists_again_after_the_watch_expired(sources: KubeSources, api_double: ApiDouble) -> None:
    assert sources.pods.wait_synced(30)
    sources.pods._interrupt()  # the next watch starts from the version we had
    api_double.compact()  # ... which is now too old
    api_double.add_pod("default", "web")
    eventually(lambda: sources.pods.get("default", "web") is not None)


def test_cache_survives_an_api_outage(sources: KubeSources, api_double: ApiDouble) -> None:
    assert sources.pods.wait_synced(30)
    api_double.add_pod("default", "before")
    eventually(lambda: sources.pods.get("default", "before") is not None)
    api_double.stop()
    assert sources.pods.get("default", "before") is not None  # still served from memory
    api_double.start()
    api_double.add_pod("default", "after")
    assert sources.resync(30)
    assert sources.pods.get("default", "after") is not None


def test_resync_is_a_barrier(sources: KubeSources, api_double: ApiDouble) -> None:
    assert sources.attachments.wait_synced(30)
    api_double.add_nad("default", "blue", config=CONF)
    api_double.update_nad("default", "blue", config="{}")
    assert sources.resync(30)
    nad = sources.attachments.get("default", "blue")
    assert nad is not None and nad.config == "{}"


def test_resync_with_the_api_down_says_so_quickly(sources: KubeSources, api_double: ApiDouble) -> None:
    assert sources.pods.wait_synced(30)
    api_double.stop()
    started = time.monotonic()
    assert not sources.resync(60)
    assert time.monotonic() - started < 30  # it said so long before its 60 s timeout


def test_stop_is_prompt(kubeconfig: str, api_double: ApiDouble) -> None:
    made = KubeSources.connect(kubeconfig=kubeconfig, node_name=NODE, watch_timeout=300)
    made.start()
    assert made.pods.wait_synced(30) and made.attachments.wait_synced(30)
    # Both watches open, as the API double saw them (not a fixed sleep).
    eventually(lambda: {r.path for r in api_double.requests if r.query.get("watch", [""])[0] in ("1", "true")}
               >= {PODS_PATH, NADS_PATH}, timeout=30)
    started = time.monotonic()
    made.stop()
    assert time.monotonic() - started < 60  # the watches would last 300 s: stop ended them


def test_a_lister_that_fails_is_retried() -> None:
    calls: list[str] = []

    def lister() -> tuple[list[Pod], str]:
        calls.append("list")
        if len(calls) == 1:
            raise Unavailable("pods", "down")
        return [Pod("default", "web")], "7"

    class Idle:
        def __init__(self) -> None:
            self.stopped = threading.Event()

        def __iter__(self) -> Iterator[WatchEvent[Pod]]:
            self.stopped.wait(5)
            return iter(())

        def stop(self) -> None:
            self.stopped.set()

    cache: WatchCache[Pod] = WatchCache(
        "pods", lister=lister, watcher=lambda version, timeout: Idle(), key=lambda pod: (pod.namespace, pod.name)
    )
    cache.start()
    try:
        assert cache.wait_synced(30)
        assert cache.get("default", "web") == Pod("default", "web")
        assert calls == ["list", "list"]
    finally:
        cache.stop()


# -- meta.daemon_source.CachedSource ----------------------------------------------------


def test_cached_reads_make_no_request(sources: KubeSources, api_double: ApiDouble) -> None:
    api_double.add_pod("default", "web", uid="u1")
    api_double.add_nad("default", "blue", config=CONF)
    assert sources.resync(30)
    eventually(lambda: sorted(sources.sizes().values()) == [1, 1], timeout=30)  # the list applied
    api_double.clear_requests()
    source = sources.for_request(_conf(), pod_uid="u1")()
    assert source.get_pod("default", "web").uid == "u1"
    assert source.get_attachment("default", "blue").config == CONF
    # Only reads of these objects count: the watch loop may re-list in the background.
    assert [r.path for r in api_double.requests if r.path.endswith(("/pods/web", "/blue"))] == []


def test_a_miss_is_one_live_get(sources: KubeSources, api_double: ApiDouble) -> None:
    assert sources.resync(30)
    sources.pods.stop()  # nothing new reaches the pod cache
    sources.attachments.stop()
    api_double.add_pod("default", "new", uid="u2")
    api_double.add_nad("default", "fresh", config=CONF)
    api_double.clear_requests()
    source = sources.for_request(_conf(), pod_uid="u2")()
    assert source.get_pod("default", "new").uid == "u2"
    assert source.get_attachment("default", "fresh").name == "fresh"
    with pytest.raises(NotFound):
        source.get_attachment("default", "missing")
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in api_double.requests] == [
        ("GET", "new"), ("GET", "fresh"), ("GET", "missing"),
    ]


def test_a_cached_pod_with_another_uid_is_read_again(sources: KubeSources, api_double: ApiDouble) -> None:
    api_double.add_pod("default", "web", uid="old")
    assert sources.resync(30)
    sources.pods.stop()
    api_double.delete_pod("default", "web")
    api_double.add_pod("default", "web", uid="new")
    source = CachedSource(sources.kube, pods=sources.pods, attachments=sources.attachments, pod_uid="new")
    assert source.get_pod("default", "web").uid == "new"


def _conf() -> config.MetaConf:
    return config.load_meta_conf({"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "x"})


def test_nad_model_is_what_the_cache_holds(sources: KubeSources, api_double: ApiDouble) -> None:
    api_double.add_nad("default", "blue", config=CONF, annotations={"k8s.v1.cni.cncf.io/resourceName": "r"})
    assert sources.resync(30)
    assert sources.attachments.get("default", "blue") == NetworkAttachment(
        "default", "blue", CONF, {"k8s.v1.cni.cncf.io/resourceName": "r"}
    )
