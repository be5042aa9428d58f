"""The policy engine's watch caches: MultiNetworkPolicies and Namespaces always, and
every pod in the cluster only while at least one MultiNetworkPolicy exists.

Why cluster-wide pods, and only then: a rule's peers may be any pod of any namespace a
namespaceSelector picks, on any node, so a node-scoped watch cannot see them. Watching
only the namespaces the policies can reach would need the watch set redone whenever a
policy or a namespace label changes, and an empty namespaceSelector reaches every
namespace anyway, so it saves little in the cases that matter. A cluster without
MultiNetworkPolicies pays nothing: the pod watch starts with the first policy and stops
when the last one goes.

A cluster without the MultiNetworkPolicy CRD (the list answers 404) counts as one
without policies: the list is retried every `CRD_RECHECK` seconds, so installing the CRD
later needs no daemon restart. So does a daemon whose RBAC lacks the policy rules (403,
an upgrade that kept the old ClusterRole), with an error in the log each time: blocking
every pod's ADD on a missing permission would take the node's networking down."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from meta.source import Forbidden, Namespace, NotFound, Pod, PolicyObject
from meta.watchcache import Expired, WatchCache, WatchEvent, WatchStream

log = logging.getLogger(__name__)

CRD_RECHECK = 30.0


class PolicyApi(Protocol):
    """What the engine needs of meta.k8s.Kube."""

    def get_pod(self, namespace: str, name: str) -> Pod: ...

    def list_all_pods_versioned(self) -> tuple[list[Pod], str]: ...

    def watch_all_pods(self, *, resource_version: str, timeout: int) -> WatchStream[Pod]: ...

    def list_namespaces_versioned(self) -> tuple[list[Namespace], str]: ...

    def watch_namespaces(self, *, resource_version: str, timeout: int) -> WatchStream[Namespace]: ...

    def list_policies_versioned(self) -> tuple[list[PolicyObject], str]: ...

    def watch_policies(self, *, resource_version: str, timeout: int) -> WatchStream[PolicyObject]: ...


class PolicyCaches:
    """The watch caches; `on_change` is called (from a watch thread) after any change."""

    def __init__(self, kube: PolicyApi, *, on_change: Callable[[], None], watch_timeout: int = 300) -> None:
        self.kube = kube
        self._on_change = on_change
        self._watch_timeout = watch_timeout
        self._crd_missing = False
        self._lock = threading.Lock()
        self.policies: WatchCache[PolicyObject] = WatchCache(
            "multi-networkpolicies", lister=self._list_policies, watcher=self._watch_policies,
            key=lambda p: (p.namespace, p.name), watch_timeout=watch_timeout, on_change=on_change,
        )
        self.namespaces: WatchCache[Namespace] = WatchCache(
            "namespaces", lister=kube.list_namespaces_versioned,
            watcher=lambda version, timeout: kube.watch_namespaces(resource_version=version, timeout=timeout),
            key=lambda ns: ("", ns.name), watch_timeout=watch_timeout, on_change=on_change,
        )
        self.pods: WatchCache[Pod] | None = None

    def start(self) -> None:
        self.policies.start()
        self.namespaces.start()

    def stop(self) -> None:
        self.policies.stop()
        self.namespaces.stop()
        with self._lock:
            pods, self.pods = self.pods, None
        if pods is not None:
            pods.stop()

    @property
    def synced(self) -> bool:
        """Policies and namespaces listed, and the pods too when a policy exists."""
        if not (self.policies.synced and self.namespaces.synced):
            return False
        pods = self.pods
        return not len(self.policies) or (pods is not None and pods.synced)

    def wait_synced(self, timeout: float, *, clock: Callable[[], float]) -> bool:
        deadline = clock() + timeout
        for cache in (self.policies, self.namespaces):
            if not cache.wait_synced(max(0.0, deadline - clock())):
                return False
        self.follow_pods()
        pods = self.pods
        return pods is None or pods.wait_synced(max(0.0, deadline - clock()))

    def follow_pods(self) -> None:
        """Start the cluster-wide pod watch when a policy exists; stop it when none does."""
        wanted = len(self.policies) > 0
        with self._lock:
            if wanted and self.pods is None:
                log.info("network policy: a MultiNetworkPolicy exists; watching every pod for peers")
                kube = self.kube
                self.pods = WatchCache(
                    "pods-for-policy", lister=kube.list_all_pods_versioned,
                    watcher=lambda version, timeout: kube.watch_all_pods(resource_version=version, timeout=timeout),
                    key=lambda pod: (pod.namespace, pod.name), watch_timeout=self._watch_timeout,
                    on_change=self._on_change,
                )
                self.pods.start()
                return
            if wanted or self.pods is None:
                return
            pods, self.pods = self.pods, None
        log.info("network policy: no MultiNetworkPolicy left; the cluster-wide pod watch stops")
        pods.stop()

    def _list_policies(self) -> tuple[list[PolicyObject], str]:
        try:
            found = self.kube.list_policies_versioned()
        except NotFound:
            if not self._crd_missing:
                log.warning("network policy: the MultiNetworkPolicy CRD is not installed; no policies to enforce")
            self._crd_missing = True
            return [], ""
        except Forbidden as err:
            log.error("network policy: %s; NO POLICY IS ENFORCED until netplex may list them", err)
            self._crd_missing = True
            return [], ""
        self._crd_missing = False
        return found

    def _watch_policies(self, version: str, timeout: int) -> WatchStream[PolicyObject]:
        if self._crd_missing:
            return _Recheck(CRD_RECHECK)
        return self.kube.watch_policies(resource_version=version, timeout=timeout)


class _Recheck:
    """A watch that yields nothing for a while and then asks for a fresh list."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._stop = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent[PolicyObject]]:
        if not self._stop.wait(self._seconds):
            raise Expired("MultiNetworkPolicies", "checking again whether the CRD is installed")
        return iter(())

    def stop(self) -> None:
        self._stop.set()
