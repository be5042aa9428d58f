"""The API double's generic store (tests/kube/apistore.py), over real HTTP with the
IPAM's own client: create/AlreadyExists, optimistic concurrency on update, delete
preconditions, the status subresource, selectors, watches and 410, and injected faults."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from delegates.ipam.cluster import kubeapi
from tests.kube.apidouble import ApiDouble
from tests.kube.conftest import KUBECONFIG

pytestmark = pytest.mark.kube

WIDGETS = kubeapi.Resource("example.io", "v1", "widgets", namespaced=True)
GADGETS = kubeapi.Resource("example.io", "v1", "gadgets", namespaced=False)


@pytest.fixture
def client(api_double: ApiDouble, tmp_path: Path) -> kubeapi.Client:
    api_double.register_resource("example.io", "v1", "widgets", kind="Widget")
    api_double.register_resource("example.io", "v1", "gadgets", namespaced=False, kind="Gadget")
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.format(server=api_double.url))
    return kubeapi.Client.from_kubeconfig(str(path), timeout=5.0)


def test_create_twice_is_409_already_exists(client: kubeapi.Client) -> None:
    made = client.create(WIDGETS, {"metadata": {"name": "w"}, "spec": {"a": 1}}, namespace="ns")
    assert made["metadata"]["namespace"] == "ns" and made["metadata"]["uid"] and made["kind"] == "Widget"
    with pytest.raises(kubeapi.Conflict):
        client.create(WIDGETS, {"metadata": {"name": "w"}}, namespace="ns")
    assert client.get(WIDGETS, "w", namespace="ns")["spec"] == {"a": 1}


def test_an_update_with_a_stale_resource_version_is_409_and_a_fresh_one_wins(client: kubeapi.Client) -> None:
    first = client.create(GADGETS, {"metadata": {"name": "g"}, "spec": {"n": 1}})
    second = client.replace(GADGETS, {**first, "spec": {"n": 2}})
    assert second["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    with pytest.raises(kubeapi.Conflict):
        client.replace(GADGETS, {**first, "spec": {"n": 3}})
    assert client.get(GADGETS, "g")["spec"] == {"n": 2}
    with pytest.raises(kubeapi.NotFound):
        client.replace(GADGETS, {"metadata": {"name": "nope"}, "spec": {}})


def test_the_status_subresource_changes_status_only(client: kubeapi.Client) -> None:
    made = client.create(WIDGETS, {"metadata": {"name": "w"}, "spec": {"a": 1}}, namespace="ns")
    client.replace(WIDGETS, {**made, "spec": {"a": 9}, "status": {"ok": True}}, namespace="ns", subresource="status")
    found = client.get(WIDGETS, "w", namespace="ns")
    assert found["spec"] == {"a": 1} and found["status"] == {"ok": True}
    client.replace(WIDGETS, {**found, "spec": {"a": 2}, "status": {}}, namespace="ns")
    assert client.get(WIDGETS, "w", namespace="ns")["status"] == {"ok": True}


def test_delete_checks_its_preconditions(client: kubeapi.Client) -> None:
    made = client.create(GADGETS, {"metadata": {"name": "g"}})
    client.replace(GADGETS, {**made, "spec": {"x": 1}})
    with pytest.raises(kubeapi.Conflict):
        client.delete(GADGETS, "g", resource_version=made["metadata"]["resourceVersion"])
    client.delete(GADGETS, "g", uid=made["metadata"]["uid"])
    with pytest.raises(kubeapi.NotFound):
        client.delete(GADGETS, "g")


def test_lists_take_label_selectors_namespaces_and_limits(client: kubeapi.Client) -> None:
    for name, colour, namespace in (("a", "red", "x"), ("b", "blue", "x"), ("c", "red", "y")):
        client.create(WIDGETS, {"metadata": {"name": name, "labels": {"colour": colour}}}, namespace=namespace)
    names = lambda items: sorted(item["metadata"]["name"] for item in items)  # noqa: E731
    assert names(client.list(WIDGETS, label_selector="colour=red")) == ["a", "c"]
    assert names(client.list(WIDGETS, namespace="x")) == ["a", "b"]
    assert len(client.list(WIDGETS, limit=1)) == 1


def test_a_watch_sees_changes_and_an_old_version_gets_410(api_double: ApiDouble, client: kubeapi.Client) -> None:
    listed = client.request("GET", GADGETS.path())
    version = listed["metadata"]["resourceVersion"]
    client.create(GADGETS, {"metadata": {"name": "g"}})
    url = f"{api_double.url}{GADGETS.path()}?watch=1&resourceVersion={version}&timeoutSeconds=1"
    with urllib.request.urlopen(url, timeout=10) as response:
        events = [json.loads(line) for line in response.read().splitlines() if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "g")]
    api_double.compact()
    with urllib.request.urlopen(url, timeout=10) as response:
        [gone] = [json.loads(line) for line in response.read().splitlines() if line.strip()]
    assert gone["type"] == "ERROR" and gone["object"]["code"] == 410


def test_chaos_fails_stalls_and_loses_replies_of_writes(api_double: ApiDouble, client: kubeapi.Client) -> None:
    chaos = api_double.chaos(conflict=0.25, error=0.25, lost_reply=0.25, stall=0.2, stall_seconds=0.01, seed=3)
    outcomes: dict[str, int] = {}
    for index in range(60):
        try:
            client.create(GADGETS, {"metadata": {"name": f"g{index}"}})
            outcome = "ok"
        except kubeapi.ApiError as exc:
            outcome = type(exc).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    api_double.chaos()
    assert set(chaos.counts) == {"conflict", "error", "lost_reply", "stall"}
    assert {"ok", "Conflict", "Unavailable"} <= set(outcomes)
    stored = {item["metadata"]["name"] for item in client.list(GADGETS)}
    assert len(stored) == outcomes["ok"] + chaos.counts["lost_reply"]  # lost replies were applied
