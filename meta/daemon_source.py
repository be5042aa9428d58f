"""Where the daemon's requests read pods and NADs: the watch caches, or what thin mode uses.

With Kubernetes (a kubeconfig or the in-cluster service account), `KubeSources` keeps
two watch caches, the node's pods and every NetworkAttachmentDefinition, and hands each
request a `CachedSource`: reads come from the caches, a miss (a pod created a moment ago,
a NAD the watch has not delivered yet) falls back to one live GET, and network-status is
written to the API as in thin mode. A cached pod whose UID differs from the runtime's
K8S_POD_UID is treated as a miss: the cache may not have seen the pod replaced yet.

Without Kubernetes, `LocalSources` opens what thin mode opens for the request's config
(`meta.plugin.open_source`), afresh per request, so edits to the manifest directory are
seen at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from meta import config, plugin
from meta.source import NetworkAttachment, Pod, Source
from meta.watchcache import WatchCache

log = logging.getLogger(__name__)

API_TIMEOUT = 10.0  # seconds per API request


class Sources(Protocol):
    """What the daemon needs from its network source."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def ready(self) -> bool: ...

    def resync(self, timeout: float) -> bool: ...

    def for_request(self, conf: config.MetaConf, *, pod_uid: str) -> Callable[[], Source]: ...

    def sizes(self) -> dict[str, int]: ...


class LocalSources:
    """No Kubernetes: each request opens its own source, as in thin mode."""

    def start(self) -> None:
        """Nothing to watch."""

    def stop(self) -> None:
        """Nothing to stop."""

    @property
    def ready(self) -> bool:
        return True

    def resync(self, timeout: float) -> bool:
        return True

    def for_request(self, conf: config.MetaConf, *, pod_uid: str) -> Callable[[], Source]:
        return lambda: plugin.open_source(conf)

    def sizes(self) -> dict[str, int]:
        return {}


class KubeApi(Protocol):
    """The part of meta.k8s.Kube the daemon uses (tests hand in a fake)."""

    def get_pod(self, namespace: str, name: str) -> Pod: ...

    def get_attachment(self, namespace: str, name: str) -> NetworkAttachment: ...

    def set_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class KubeSources:
    """Watch caches of the node's pods and of every NAD, over one API client."""

    def __init__(
        self, kube: KubeApi, *, pods: WatchCache[Pod], attachments: WatchCache[NetworkAttachment]
    ) -> None:
        self.kube = kube
        self.pods = pods
        self.attachments = attachments

    @classmethod
    def connect(
        cls, *, kubeconfig: str, node_name: str, on_request: Callable[[str], None] | None = None,
        watch_timeout: int = 300,
    ) -> KubeSources:
        """A client from `kubeconfig` (or the service account when it is empty) and the
        two caches on it, not yet started. Raises `SourceError`."""
        from meta import k8s

        if kubeconfig:
            kube = k8s.Kube.from_kubeconfig(kubeconfig, timeout=API_TIMEOUT, on_request=on_request)
        else:
            kube = k8s.Kube.in_cluster(timeout=API_TIMEOUT, on_request=on_request)
        pods: WatchCache[Pod] = WatchCache(
            "pods",
            lister=lambda: kube.list_pods_versioned(node_name),
            watcher=lambda version, timeout: kube.watch_pods(node_name, resource_version=version, timeout=timeout),
            key=lambda pod: (pod.namespace, pod.name),
            watch_timeout=watch_timeout,
        )
        attachments: WatchCache[NetworkAttachment] = WatchCache(
            "network-attachment-definitions",
            lister=kube.list_attachments_versioned,
            watcher=lambda version, timeout: kube.watch_attachments(resource_version=version, timeout=timeout),
            key=lambda nad: (nad.namespace, nad.name),
            watch_timeout=watch_timeout,
        )
        return cls(kube, pods=pods, attachments=attachments)

    def start(self) -> None:
        self.pods.start()
        self.attachments.start()

    def stop(self) -> None:
        self.pods.stop()
        self.attachments.stop()
        self.kube.close()

    @property
    def ready(self) -> bool:
        return self.pods.synced and self.attachments.synced

    def resync(self, timeout: float) -> bool:
        return self.pods.resync(timeout) and self.attachments.resync(timeout)

    def for_request(self, conf: config.MetaConf, *, pod_uid: str) -> Callable[[], Source]:
        return lambda: CachedSource(self.kube, pods=self.pods, attachments=self.attachments, pod_uid=pod_uid)

    def sizes(self) -> dict[str, int]:
        return {self.pods.name: len(self.pods), self.attachments.name: len(self.attachments)}


class CachedSource:
    """A meta.source.Source for one request: the caches first, one live GET on a miss."""

    def __init__(
        self,
        kube: KubeApi,
        *,
        pods: WatchCache[Pod],
        attachments: WatchCache[NetworkAttachment],
        pod_uid: str = "",
    ) -> None:
        self._kube = kube
        self._pods = pods
        self._attachments = attachments
        self._pod_uid = pod_uid

    def get_pod(self, namespace: str, name: str) -> Pod:
        cached = self._pods.get(namespace, name)
        if cached is not None and (not self._pod_uid or not cached.uid or cached.uid == self._pod_uid):
            return cached
        log.debug("pod %s/%s: not in the watch cache (or another UID); reading it", namespace, name)
        return self._kube.get_pod(namespace, name)

    def get_attachment(self, namespace: str, name: str) -> NetworkAttachment:
        cached = self._attachments.get(namespace, name)
        if cached is not None:
            return cached
        log.debug("NetworkAttachmentDefinition %s/%s: not in the watch cache; reading it", namespace, name)
        return self._kube.get_attachment(namespace, name)

    def set_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        self._kube.set_network_status(pod, status)


def connect(
    mode: str, *, kubeconfig: str, node_name: str, on_request: Callable[[str], None] | None = None,
    watch_timeout: int = 300,
) -> Sources:
    """The sources for a daemon's `source_mode`. Raises `SourceError`."""
    if mode == "local":
        return LocalSources()
    return KubeSources.connect(
        kubeconfig=kubeconfig, node_name=node_name, on_request=on_request, watch_timeout=watch_timeout
    )
