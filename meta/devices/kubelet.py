"""The kubelet's pod-resources API (gRPC `v1.PodResourcesLister` on a unix socket): which
device IDs the device plugins' resources gave one pod.

`Get` asks for the one pod (kubelet 1.27+ with KubeletPodResourcesGet, on by default from
1.34); when the kubelet does not serve it, `List` (every pod on the node) answers instead.
Each call is bounded by the caller's deadline; a missing socket, a kubelet that does not
answer in time, or any other gRPC failure is CNI error 11 naming the socket, so the
runtime retries rather than starting a pod without its device.

One `Client` per socket per process: a thin-mode plugin makes one and exits; the daemon
keeps it, so it holds one connection (the gRPC channel reconnects by itself) and a short
per-pod cache (`CACHE_SECONDS`), enough for the networks of one ADD and for concurrent
ADDs, too short to outlive a pod. `grpc` and the generated modules are imported on the
first call only: a pod without a resourceName never loads them."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from cni.errors import CniError, Code

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
CACHE_SECONDS = 2.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # the kubelet's own limit for this API

Devices = Mapping[str, tuple[str, ...]]  # resource name -> device IDs, in the kubelet's order

_clients: dict[str, Client] = {}
_clients_lock = threading.Lock()


def pod_devices(socket_path: str, namespace: str, name: str, *, deadline: float) -> Devices:
    """The devices of pod `namespace/name` by resource, through the process's client."""
    with _clients_lock:
        client = _clients.get(socket_path)
        if client is None:
            client = _clients[socket_path] = Client(socket_path)
    return client.pod_devices(namespace, name, deadline=deadline)


def close_all() -> None:
    """Close every client's connection (tests, and a daemon that stops)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


class Client:
    """One connection to one pod-resources socket; thread-safe."""

    def __init__(self, socket_path: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.socket_path = socket_path
        self._clock = clock
        self._lock = threading.Lock()
        self._channel: Any = None
        self._stub: Any = None
        self._get_unimplemented = False
        self._cache: dict[tuple[str, str], tuple[float, Devices]] = {}

    def pod_devices(self, namespace: str, name: str, *, deadline: float) -> Devices:
        key = (namespace, name)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < CACHE_SECONDS:
                return cached[1]
        devices = self._ask(namespace, name, deadline=deadline)
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < CACHE_SECONDS}
            self._cache[key] = (self._clock(), devices)
        return devices

    def close(self) -> None:
        with self._lock:
            channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()

    def _ask(self, namespace: str, name: str, *, deadline: float) -> Devices:
        if not os.path.exists(self.socket_path):
            raise CniError(
                Code.TRY_AGAIN_LATER,
                f"podResourcesSocket {self.socket_path!r} does not exist: is the kubelet running "
                "(and its pod-resources socket mounted into netplex's pod)?",
            )
        import grpc

        from meta.devices.podresources import api_pb2

        stub = self._connect()
        try:
            if not self._get_unimplemented:
                try:
                    answer = stub.Get(
                        api_pb2.GetPodResourcesRequest(pod_name=name, pod_namespace=namespace),
                        timeout=self._remaining(deadline),
                    )
                    return _devices_of([answer.pod_resources])
                except grpc.RpcError as exc:
                    code = exc.code()
                    if code == grpc.StatusCode.UNIMPLEMENTED:
                        self._get_unimplemented = True  # an older kubelet: List from now on
                    elif code != grpc.StatusCode.UNKNOWN:  # UNKNOWN: Get disabled, or pod unknown to Get
                        raise
            listed = stub.List(api_pb2.ListPodResourcesRequest(), timeout=self._remaining(deadline))
            return _devices_of(
                [pod for pod in listed.pod_resources if pod.namespace == namespace and pod.name == name]
            )
        except grpc.RpcError as exc:
            status = exc.code()
            cause = "did not answer in time" if status == grpc.StatusCode.DEADLINE_EXCEEDED else (
                f"answered {status.name}: {exc.details() or 'no details'}"
            )
            raise CniError(
                Code.TRY_AGAIN_LATER, f"podResourcesSocket {self.socket_path!r}: the kubelet {cause}"
            ) from exc

    def _connect(self) -> Any:
        with self._lock:
            if self._stub is None:
                import grpc

                from meta.devices.podresources import api_pb2_grpc

                self._channel = grpc.insecure_channel(
                    f"unix:{self.socket_path}",
                    options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
                )
                self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)
            return self._stub

    def _remaining(self, deadline: float) -> float:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise CniError(
                Code.TRY_AGAIN_LATER,
                f"podResourcesSocket {self.socket_path!r}: the ADD deadline passed before the kubelet was asked",
            )
        return remaining


def _devices_of(pods: list[Any]) -> Devices:
    found: dict[str, list[str]] = {}
    for pod in pods:
        for container in pod.containers:
            for devices in container.devices:
                ids = found.setdefault(str(devices.resource_name), [])
                ids.extend(str(device) for device in devices.device_ids if str(device) not in ids)
    return {resource: tuple(ids) for resource, ids in found.items()}
