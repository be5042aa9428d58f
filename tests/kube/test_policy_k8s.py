"""meta/k8s.py's network-policy reads over real HTTP to the API double: every pod with its
labels and named ports, namespaces, MultiNetworkPolicies (listed and watched), and the
policy engine's watch caches (meta/policy/sources.py), including a cluster without the
CRD."""

from __future__ import annotations

import time

import pytest
import urllib3

from meta import k8s
from meta.policy.sources import PolicyCaches
from tests.kube.apidouble import ApiDouble

SPEC = {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]}


def _wait(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_every_pod_comes_with_labels_and_named_ports(kube: k8s.Kube, api_double: ApiDouble) -> None:
    api_double.add_pod("a", "one", labels={"app": "db"}, node_name="node-1")
    api_double.add_pod("b", "two", node_name="node-2")
    pods, version = kube.list_all_pods_versioned()
    assert {(p.namespace, p.name) for p in pods} == {("a", "one"), ("b", "two")} and version
    assert next(p for p in pods if p.name == "one").labels == {"app": "db"}


def test_namespaces_and_policies_are_listed_with_labels_and_policy_for(
    kube: k8s.Kube, api_double: ApiDouble
) -> None:
    api_double.add_namespace("prod", labels={"team": "blue"})
    api_double.add_policy("prod", "deny", SPEC, policy_for="prod/net-a")
    namespaces, _ = kube.list_namespaces_versioned()
    assert [(ns.name, ns.labels["team"]) for ns in namespaces] == [("prod", "blue")]
    policies, _ = kube.list_policies_versioned()
    [policy] = policies
    assert (policy.namespace, policy.name, dict(policy.spec)) == ("prod", "deny", SPEC)
    assert policy.annotations["k8s.v1.cni.cncf.io/policy-for"] == "prod/net-a"


def test_policies_are_served_as_v1beta2_too(api_double: ApiDouble) -> None:
    api_double.add_policy("prod", "deny", SPEC, policy_for="net-a")
    for version in ("v1beta1", "v1beta2"):
        answer = urllib3.request("GET", f"{api_double.url}/apis/k8s.cni.cncf.io/{version}/multi-networkpolicies")
        assert answer.status == 200 and [i["metadata"]["name"] for i in answer.json()["items"]] == ["deny"]


def test_policy_caches_follow_changes_and_watch_pods_only_while_a_policy_exists(
    kube: k8s.Kube, api_double: ApiDouble
) -> None:
    changes: list[int] = []
    caches = PolicyCaches(kube, on_change=lambda: changes.append(1), watch_timeout=5)
    caches.start()
    try:
        assert caches.wait_synced(10, clock=time.monotonic) and caches.pods is None
        api_double.add_policy("default", "p", SPEC, policy_for="net-a")
        _wait(lambda: len(caches.policies) == 1)
        caches.follow_pods()
        assert caches.pods is not None and caches.wait_synced(10, clock=time.monotonic)
        api_double.add_pod("default", "late", labels={"app": "db"})
        _wait(lambda: caches.pods is not None and caches.pods.get("default", "late") is not None)
        api_double.delete_policy("default", "p")
        _wait(lambda: len(caches.policies) == 0)
        caches.follow_pods()
        assert caches.pods is None
        assert changes
    finally:
        caches.stop()


def test_a_cluster_without_the_crd_counts_as_one_without_policies(kube: k8s.Kube, api_double: ApiDouble) -> None:
    api_double.fail_next(404, path="multi-networkpolicies", times=1000)
    caches = PolicyCaches(kube, on_change=lambda: None, watch_timeout=5)
    caches.start()
    try:
        assert caches.wait_synced(10, clock=time.monotonic)
        assert len(caches.policies) == 0 and caches.synced
    finally:
        caches.stop()


def test_a_daemon_without_the_policy_rbac_stays_ready_and_says_why(
    kube: k8s.Kube, api_double: ApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    api_double.fail_next(403, path="multi-networkpolicies", times=1000)
    caches = PolicyCaches(kube, on_change=lambda: None, watch_timeout=5)
    caches.start()
    try:
        assert caches.wait_synced(10, clock=time.monotonic) and len(caches.policies) == 0
    finally:
        caches.stop()
    assert "NO POLICY IS ENFORCED" in caplog.text
