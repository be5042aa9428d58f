"""A small CRI v1 client: the calls kubelet makes to run a pod, over containerd's socket.

The gRPC stubs come from PyPI's `container-runtime-interface-api` (module `cri_api`,
generated from k8s.io/cri-api), a test dependency. Pods get a cgroup parent of the
lane's own, so everything they leave in the cgroup hierarchy can be found and removed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]  # types-grpcio is optional
from cri_api.v1 import api_pb2 as api
from cri_api.v1 import api_pb2_grpc as api_grpc

DEFAULT_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int
    host_ip: str = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class SandboxStatus:
    """What the runtime reports about a pod sandbox (PodSandboxStatus, verbose)."""

    state: str  # "SANDBOX_READY" or "SANDBOX_NOTREADY"
    ip: str
    additional_ips: tuple[str, ...]
    netns: str  # the network namespace path containerd made and handed to CNI
    pid: int  # the pause process


class Cri:
    """RuntimeService calls on one socket; remembers each pod's config for its containers."""

    def __init__(self, socket: Path, *, timeout: float = DEFAULT_TIMEOUT, cgroup_parent: str = "") -> None:
        self._channel = grpc.insecure_channel(f"unix://{socket}")
        self._runtime = api_grpc.RuntimeServiceStub(self._channel)  # type: ignore[no-untyped-call, unused-ignore]
        self._timeout = timeout
        self._cgroup_parent = cgroup_parent
        self._configs: dict[str, Any] = {}

    def close(self) -> None:
        self._channel.close()

    def conditions(self) -> dict[str, bool]:
        """RuntimeReady / NetworkReady, as kubelet polls them."""
        status = self._runtime.Status(api.StatusRequest(), timeout=self._timeout)
        return {condition.type: condition.status for condition in status.status.conditions}

    def run_pod(
        self,
        *,
        name: str,
        namespace: str,
        uid: str,
        annotations: Mapping[str, str] | None = None,
        port_mappings: Sequence[PortMapping] = (),
        dns_servers: Sequence[str] = (),
        dns_searches: Sequence[str] = (),
        log_dir: Path | None = None,
    ) -> str:
        """RunPodSandbox; returns the sandbox ID (raises grpc.RpcError with the CNI error)."""
        config = api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=name, namespace=namespace, uid=uid, attempt=0),
            hostname=name,
            log_directory=str(log_dir) if log_dir else "",
            annotations=dict(annotations or {}),
            dns_config=api.DNSConfig(servers=list(dns_servers), searches=list(dns_searches)),
            port_mappings=[
                api.PortMapping(
                    protocol=api.TCP, container_port=port.container_port,
                    host_port=port.host_port, host_ip=port.host_ip,
                )
                for port in port_mappings
            ],
            linux=api.LinuxPodSandboxConfig(
                cgroup_parent=self._cgroup_parent,
                security_context=api.LinuxSandboxSecurityContext(namespace_options=_pod_namespaces()),
            ),
        )
        response = self._runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config), timeout=self._timeout)
        sandbox_id: str = response.pod_sandbox_id
        self._configs[sandbox_id] = config
        return sandbox_id

    def sandbox_status(self, sandbox_id: str) -> SandboxStatus:
        response = self._runtime.PodSandboxStatus(
            api.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True), timeout=self._timeout
        )
        info = json.loads(response.info.get("info", "{}"))
        namespaces = info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", [])
        netns = next((ns.get("path", "") for ns in namespaces if ns.get("type") == "network"), "")
        network = response.status.network
        return SandboxStatus(
            state=api.PodSandboxState.Name(response.status.state),
            ip=network.ip,
            additional_ips=tuple(extra.ip for extra in network.additional_ips),
            netns=netns,
            pid=int(info.get("pid", 0)),
        )

    def list_sandboxes(self) -> list[str]:
        response = self._runtime.ListPodSandbox(api.ListPodSandboxRequest(), timeout=self._timeout)
        return [item.id for item in response.items]

    def start_container(self, sandbox_id: str, *, name: str, image: str, command: Sequence[str]) -> str:
        """CreateContainer + StartContainer in the pod; returns the container ID."""
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name, attempt=0),
            image=api.ImageSpec(image=image),
            command=list(command),
            log_path=f"{name}.log",
            linux=api.LinuxContainerConfig(
                security_context=api.LinuxContainerSecurityContext(namespace_options=_pod_namespaces())
            ),
        )
        created = self._runtime.CreateContainer(
            api.CreateContainerRequest(
                pod_sandbox_id=sandbox_id, config=config, sandbox_config=self._configs[sandbox_id]
            ),
            timeout=self._timeout,
        )
        container_id: str = created.container_id
        self._runtime.StartContainer(api.StartContainerRequest(container_id=container_id), timeout=self._timeout)
        return container_id

    def exec_sync(self, container_id: str, command: Sequence[str], *, timeout: int = 10) -> tuple[int, str, str]:
        """ExecSync: (exit code, stdout, stderr)."""
        response = self._runtime.ExecSync(
            api.ExecSyncRequest(container_id=container_id, cmd=list(command), timeout=timeout),
            timeout=self._timeout,
        )
        out, err = response.stdout.decode(errors="replace"), response.stderr.decode(errors="replace")
        return int(response.exit_code), out, err

    def stop_pod(self, sandbox_id: str) -> None:
        self._runtime.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=self._timeout)

    def remove_pod(self, sandbox_id: str) -> None:
        self._runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=self._timeout)
        self._configs.pop(sandbox_id, None)

    def remove_all(self) -> list[str]:
        """Stop and remove every sandbox (teardown); returns the errors' texts."""
        problems = []
        for sandbox_id in self.list_sandboxes():
            for step in (self.stop_pod, self.remove_pod):
                try:
                    step(sandbox_id)
                except grpc.RpcError as err:
                    problems.append(f"{step.__name__} {sandbox_id[:12]}: {details(err)}")
        return problems


def details(err: grpc.RpcError) -> str:
    """The error text the runtime sent (for CNI failures, the plugin's message)."""
    text = err.details() if hasattr(err, "details") else None
    return str(text or err)


def _pod_namespaces() -> Any:
    return api.NamespaceOption(network=api.POD, pid=api.CONTAINER, ipc=api.POD)
