"""meta.k8s over real HTTP: the official client against the API double."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from meta import k8s
from meta.model import NETWORK_STATUS_ANNOTATION
from meta.source import Forbidden, NotFound, Pod, Source, SourceError, Unavailable
from tests.kube.apidouble import ApiDouble

NETWORKS = "k8s.v1.cni.cncf.io/networks"
RESOURCE_NAME = "k8s.v1.cni.cncf.io/resourceName"
POD_PATH = "/api/v1/namespaces/default/pods/web"
NAD_PATH = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/macvlan-conf"
MACVLAN = '{"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0"}'
STATUS: list[dict[str, Any]] = [
    {"name": "cbr0", "interface": "eth0", "ips": ["10.244.1.5"], "mac": "0a:58:0a:f4:01:05", "default": True},
    {"name": "default/macvlan-conf", "interface": "net1", "ips": ["192.168.1.200"], "mac": "c2:11:22:33:44:55"},
]


@pytest.fixture
def seeded(api_double: ApiDouble) -> ApiDouble:
    api_double.add_pod("default", "web", annotations={NETWORKS: "macvlan-conf"}, uid="uid-web")
    api_double.add_nad("default", "macvlan-conf", config=MACVLAN, annotations={RESOURCE_NAME: "intel.com/sriov"})
    api_double.clear_requests()
    return api_double


def test_kube_is_a_source(kube: k8s.Kube) -> None:
    typed: Source = kube
    assert typed is kube


def test_get_pod_returns_annotations_and_uid(kube: k8s.Kube, seeded: ApiDouble) -> None:
    pod = kube.get_pod("default", "web")
    assert pod == Pod("default", "web", uid="uid-web", annotations={NETWORKS: "macvlan-conf"})
    assert [(r.method, r.path) for r in seeded.requests] == [("GET", POD_PATH)]


def test_get_attachment_returns_spec_config_and_annotations(kube: k8s.Kube, seeded: ApiDouble) -> None:
    nad = kube.get_attachment("default", "macvlan-conf")
    assert (nad.namespace, nad.name, nad.config) == ("default", "macvlan-conf", MACVLAN)
    assert nad.annotations == {RESOURCE_NAME: "intel.com/sriov"}
    assert [(r.method, r.path) for r in seeded.requests] == [("GET", NAD_PATH)]


def test_attachment_without_config_has_empty_config(kube: k8s.Kube, api_double: ApiDouble) -> None:
    api_double.add_nad("default", "bare")
    assert kube.get_attachment("default", "bare").config == ""


def test_missing_pod_is_not_found(kube: k8s.Kube, seeded: ApiDouble) -> None:
    with pytest.raises(NotFound, match='pod "default/nope": not found'):
        kube.get_pod("default", "nope")


def test_missing_attachment_is_not_found(kube: k8s.Kube, seeded: ApiDouble) -> None:
    with pytest.raises(NotFound, match='NetworkAttachmentDefinition "default/nope"'):
        kube.get_attachment("default", "nope")


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_unavailable(kube: k8s.Kube, seeded: ApiDouble, status: int) -> None:
    seeded.fail_next(status)
    with pytest.raises(Unavailable, match=f"HTTP {status}"):
        kube.get_pod("default", "web")
    assert len(seeded.requests) == 1  # no retry on the CNI path


@pytest.mark.parametrize("status", [401, 403])
def test_refusals_are_forbidden(kube: k8s.Kube, seeded: ApiDouble, status: int) -> None:
    seeded.fail_next(status)
    with pytest.raises(Forbidden, match=f"HTTP {status}"):
        kube.get_attachment("default", "macvlan-conf")


def test_other_client_errors_are_plain_source_errors(kube: k8s.Kube, seeded: ApiDouble) -> None:
    seeded.fail_next(400)
    with pytest.raises(SourceError) as caught:
        kube.get_pod("default", "web")
    assert type(caught.value) is SourceError


def test_stopped_server_is_unavailable_quickly(kube: k8s.Kube, seeded: ApiDouble) -> None:
    seeded.stop()
    started = time.monotonic()
    with pytest.raises(Unavailable, match=f"cannot reach the API server {seeded.url}: Connection refused"):
        kube.get_pod("default", "web")
    assert time.monotonic() - started < 1.0


def test_client_works_again_after_a_restart(kube: k8s.Kube, seeded: ApiDouble) -> None:
    seeded.stop()
    with pytest.raises(Unavailable):
        kube.get_pod("default", "web")
    seeded.start()
    assert kube.get_pod("default", "web").uid == "uid-web"


def test_slow_server_times_out_as_unavailable(kubeconfig: str, seeded: ApiDouble) -> None:
    seeded.delay_next(5.0)
    with k8s.Kube.from_kubeconfig(kubeconfig, timeout=0.3) as kube:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="timed out"):
            kube.get_pod("default", "web")
        assert time.monotonic() - started < 2.0


def test_set_network_status_sends_one_merge_patch_to_the_status_subresource(kube: k8s.Kube, seeded: ApiDouble) -> None:
    kube.set_network_status(Pod("default", "web", uid="uid-web"), STATUS)
    [request] = seeded.requests  # one PATCH: no read, no retry loop
    assert (request.method, request.path) == ("PATCH", POD_PATH + "/status")
    assert request.content_type == k8s.MERGE_PATCH
    value = request.json()["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION]
    assert json.loads(value) == STATUS
    assert request.json()["metadata"]["uid"] == "uid-web"  # precondition: this pod, not a namesake


def test_network_status_lands_on_the_pod_beside_other_annotations(kube: k8s.Kube, seeded: ApiDouble) -> None:
    kube.set_network_status(Pod("default", "web", uid="uid-web"), STATUS)
    annotations = seeded.pod("default", "web")["metadata"]["annotations"]
    assert annotations[NETWORKS] == "macvlan-conf"
    assert json.loads(annotations[NETWORK_STATUS_ANNOTATION]) == STATUS
    assert json.loads(kube.get_pod("default", "web").annotations[NETWORK_STATUS_ANNOTATION]) == STATUS


def test_network_status_value_is_indented_as_multus_writes_it(kube: k8s.Kube, seeded: ApiDouble) -> None:
    kube.set_network_status(Pod("default", "web"), [{"name": "a", "default": True}])
    value = seeded.pod("default", "web")["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION]
    assert value == '[{\n    "name": "a",\n    "default": true\n}]'


def test_network_status_without_uid_sends_no_precondition(kube: k8s.Kube, seeded: ApiDouble) -> None:
    kube.set_network_status(Pod("default", "web"), [])
    assert "uid" not in seeded.requests[0].json()["metadata"]
    assert seeded.pod("default", "web")["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION] == "[]"


def test_network_status_of_a_replaced_pod_is_not_found(kube: k8s.Kube, seeded: ApiDouble) -> None:
    with pytest.raises(NotFound, match="replaced by another pod"):
        kube.set_network_status(Pod("default", "web", uid="uid-of-an-older-web"), STATUS)
    assert NETWORK_STATUS_ANNOTATION not in seeded.pod("default", "web")["metadata"]["annotations"]


def test_network_status_of_a_deleted_pod_is_not_found(kube: k8s.Kube, seeded: ApiDouble) -> None:
    seeded.delete_pod("default", "web")
    with pytest.raises(NotFound):
        kube.set_network_status(Pod("default", "web", uid="uid-web"), STATUS)


def test_network_status_patch_failure_is_translated(kube: k8s.Kube, seeded: ApiDouble) -> None:
    seeded.fail_next(503, method="PATCH")
    with pytest.raises(Unavailable):
        kube.set_network_status(Pod("default", "web", uid="uid-web"), STATUS)
    assert len(seeded.requests) == 1


def test_list_pods_selects_the_node_server_side(kube: k8s.Kube, seeded: ApiDouble) -> None:
    seeded.add_pod("kube-system", "other-node", node_name="node-2")
    seeded.add_pod("team-a", "db", node_name="node-1")
    seeded.clear_requests()
    pods = kube.list_pods("node-1")
    assert sorted((p.namespace, p.name) for p in pods) == [("default", "web"), ("team-a", "db")]
    [request] = seeded.requests
    assert (request.path, request.query["fieldSelector"]) == ("/api/v1/pods", ["spec.nodeName=node-1"])


def test_list_attachments_in_one_namespace_or_all(kube: k8s.Kube, seeded: ApiDouble) -> None:
    seeded.add_nad("team-a", "vlan10", config='{"type": "bridge"}')
    assert {(n.namespace, n.name) for n in kube.list_attachments()} == {
        ("default", "macvlan-conf"),
        ("team-a", "vlan10"),
    }
    assert [n.name for n in kube.list_attachments("team-a")] == ["vlan10"]
    assert [r.path for r in seeded.requests] == [
        "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions",
        "/apis/k8s.cni.cncf.io/v1/namespaces/team-a/network-attachment-definitions",
    ]


def test_missing_kubeconfig_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="no such file"):
        k8s.Kube.from_kubeconfig(str(tmp_path / "absent.kubeconfig"))


def test_broken_kubeconfig_error_does_not_quote_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.kubeconfig"
    path.write_text("users:\n- name: x\n  user: {token: s3cr3t-token\n")
    with pytest.raises(SourceError, match="invalid YAML at line") as caught:
        k8s.Kube.from_kubeconfig(str(path))
    assert "s3cr3t" not in str(caught.value)


def test_kubeconfig_without_context_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    with pytest.raises(SourceError, match="cannot load"):
        k8s.Kube.from_kubeconfig(str(path))


# The double itself: the shapes and behaviours the daemon will rely on, through the official client.


def watch_events(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Generator[dict[str, Any], None, None]:
    """The official client's watch stream (untyped) of `method`."""
    stream: Generator[dict[str, Any], None, None] = watch.Watch().stream(method, *args, **kwargs)  # type: ignore[no-untyped-call]
    return stream


def test_double_watch_streams_events_to_the_official_client(api_double: ApiDouble) -> None:
    api_double.add_nad("default", "a", config='{"type": "bridge"}')
    configuration = client.Configuration(host=api_double.url)
    with client.ApiClient(configuration) as api:
        custom = client.CustomObjectsApi(api)
        listed: Any = custom.list_cluster_custom_object("k8s.cni.cncf.io", "v1", "network-attachment-definitions")
        version = listed["metadata"]["resourceVersion"]
        api_double.add_nad("team-a", "b")
        api_double.update_nad("default", "a", config='{"type": "macvlan"}')
        api_double.delete_nad("team-a", "b")
        stream = watch_events(
            custom.list_cluster_custom_object,
            "k8s.cni.cncf.io",
            "v1",
            "network-attachment-definitions",
            resource_version=version,
            timeout_seconds=5,
        )
        with contextlib.closing(stream):
            events = [(event["type"], event["object"]["metadata"]["name"]) for event in itertools.islice(stream, 3)]
    assert events == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


def test_double_watch_of_pods_deserialises_into_client_models(api_double: ApiDouble) -> None:
    api_double.add_pod("default", "web", node_name="node-1", annotations={NETWORKS: "a"})
    api_double.add_pod("default", "elsewhere", node_name="node-2")
    with client.ApiClient(client.Configuration(host=api_double.url)) as api:
        core = client.CoreV1Api(api)
        stream = watch_events(
            core.list_pod_for_all_namespaces, field_selector="spec.nodeName=node-1", timeout_seconds=5
        )
        with contextlib.closing(stream):
            events = [(event["type"], event["object"]) for event in itertools.islice(stream, 1)]
    assert [(kind, pod.metadata.name, pod.metadata.annotations) for kind, pod in events] == [
        ("ADDED", "web", {NETWORKS: "a"})
    ]


def test_double_watch_from_a_compacted_version_is_gone(api_double: ApiDouble) -> None:
    api_double.add_nad("default", "a")
    api_double.compact()
    with client.ApiClient(client.Configuration(host=api_double.url)) as api:
        custom = client.CustomObjectsApi(api)
        stream = watch_events(
            custom.list_cluster_custom_object,
            "k8s.cni.cncf.io",
            "v1",
            "network-attachment-definitions",
            resource_version="1",
            timeout_seconds=1,
        )
        with pytest.raises(client.exceptions.ApiException) as caught:
            list(stream)
    assert caught.value.status == 410


def test_double_stop_ends_an_open_watch(api_double: ApiDouble) -> None:
    with client.ApiClient(client.Configuration(host=api_double.url)) as api:
        response: Any = client.CoreV1Api(api).list_pod_for_all_namespaces(watch=True, _preload_content=False)
        api_double.add_pod("default", "web")
        first = response.readline()
        started = time.monotonic()
        api_double.stop()
        assert time.monotonic() - started < 2.0
        assert response.read() == b""  # the stream ended
        response.release_conn()
    assert json.loads(first)["type"] == "ADDED"
