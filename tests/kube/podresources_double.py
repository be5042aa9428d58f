"""A kubelet pod-resources double: a real gRPC server (`v1.PodResourcesLister`, from the
committed api.proto modules) on a unix socket in the test's directory, serving the device
allocations the test sets, and recording every call.

    with PodResourcesDouble(tmp_path / "kubelet.sock") as kubelet:
        kubelet.allocate("default", "pod1", "example.com/nic", ["0000:00:04.0"])

`get_supported=False` answers Get with UNIMPLEMENTED (a kubelet older than 1.27, or the
feature gate off), so the client must fall back to List; `delay` holds every answer
that many seconds (a slow kubelet). Used by the kube lane (thin and daemon mode), the
netns lane and the vm lane."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from meta.devices.podresources import api_pb2, api_pb2_grpc


class PodResourcesDouble(api_pb2_grpc.PodResourcesListerServicer):  # type: ignore[misc]
    def __init__(self, socket_path: Path | str, *, get_supported: bool = True, delay: float = 0.0) -> None:
        self.socket_path = str(socket_path)
        self.get_supported = get_supported
        self.delay = delay
        self.calls: list[str] = []
        self._lock = threading.Lock()
        # (namespace, pod) -> [(container, resource, device IDs)]
        self._pods: dict[tuple[str, str], list[tuple[str, str, list[str]]]] = {}
        self._server: Any = None

    def allocate(
        self, namespace: str, pod: str, resource: str, device_ids: list[str], *, container: str = "c0"
    ) -> None:
        with self._lock:
            self._pods.setdefault((namespace, pod), []).append((container, resource, list(device_ids)))

    def release(self, namespace: str, pod: str) -> None:
        with self._lock:
            self._pods.pop((namespace, pod), None)

    def start(self) -> PodResourcesDouble:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(self, server)
        if server.add_insecure_port(f"unix:{self.socket_path}") == 0:
            raise OSError(f"cannot listen on {self.socket_path}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> PodResourcesDouble:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # --- the service -------------------------------------------------------------------

    def List(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method's name
        self._answering("List")
        with self._lock:
            pods = [self._pod(key) for key in self._pods]
        return api_pb2.ListPodResourcesResponse(pod_resources=pods)

    def Get(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._answering("Get")
        if not self.get_supported:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "method Get not implemented")
        key = (request.pod_namespace, request.pod_name)
        with self._lock:
            if key not in self._pods:
                # what the kubelet answers for a pod it does not know (a plain Go error)
                context.abort(grpc.StatusCode.UNKNOWN, f"pod {key[1]} in namespace {key[0]} not found")
            pod = self._pod(key)
        return api_pb2.GetPodResourcesResponse(pod_resources=pod)

    def GetAllocatableResources(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._answering("GetAllocatableResources")
        return api_pb2.AllocatableResourcesResponse()

    def _answering(self, method: str) -> None:
        with self._lock:
            self.calls.append(method)
        if self.delay:
            time.sleep(self.delay)

    def _pod(self, key: tuple[str, str]) -> Any:
        containers: dict[str, list[Any]] = {}
        for container, resource, ids in self._pods[key]:
            containers.setdefault(container, []).append(
                api_pb2.ContainerDevices(resource_name=resource, device_ids=ids)
            )
        return api_pb2.PodResources(
            namespace=key[0], name=key[1],
            containers=[api_pb2.ContainerResources(name=name, devices=devs) for name, devs in containers.items()],
        )
