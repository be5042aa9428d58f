"""Device-plugin networks in the ADD flow: one device per network that names a
resourceName, handed to its delegate, and reported in network-status.

`assign` runs after resolve, before the cache is written: for each attachment whose
NetworkAttachmentDefinition has `k8s.v1.cni.cncf.io/resourceName` (and no deviceID of
its own from the selection), it takes the next free device the kubelet allocated to the
pod for that resource. Devices are taken in sorted order and in plan order, so the same
pod gets the same assignment every time, and no device serves two networks of one pod.
The attachment's config then carries the device, as Multus hands it:
- `deviceID` in every plugin of the conflist;
- `runtimeConfig.deviceID` for plugins that declare the `deviceID` capability;
- `CNIDeviceInfoFile`: the path of the device-info file prepared for the delegate.

Errors (nothing has run yet, so nothing leaks): a resourceName on a sandbox that is no
Kubernetes pod, or a resource with no device for the pod, is error 7 naming the network
and the resource; more networks than devices is error 7 too; the kubelet's socket
missing or slow is error 11 naming it (`meta.devices.kubelet`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

from cni.config import Conflist
from cni.errors import CniError, Code
from meta.devices import devinfo, kubelet
from meta.model import Attachment
from meta.source import Pod

DEVICE_ID = "deviceID"
DEVICE_INFO_FILE = "CNIDeviceInfoFile"


class DeviceSettings(Protocol):
    """The meta config's keys this module reads."""

    @property
    def pod_resources_socket(self) -> str: ...

    @property
    def device_info_dir(self) -> str: ...


def assign(
    plan: Sequence[Attachment], *, pod: Pod, conf: DeviceSettings, container_id: str, deadline: float
) -> list[Attachment]:
    """`plan` with a device for every attachment that names a resource or a deviceID."""
    if not any(attachment.resource_name or attachment.device_id for attachment in plan):
        return list(plan)
    wanted = [attachment for attachment in plan if attachment.resource_name and not attachment.device_id]
    allocated: kubelet.Devices = {}
    if wanted:
        if not pod.name:
            first = wanted[0]
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"network {first.network!r} names resourceName {first.resource_name!r}, but the sandbox is no "
                "Kubernetes pod (no K8S_POD_NAME), so the kubelet cannot say which device it got",
            )
        allocated = kubelet.pod_devices(conf.pod_resources_socket, pod.namespace, pod.name, deadline=deadline)
    used = {attachment.device_id for attachment in plan if attachment.device_id}
    placed: list[Attachment] = []
    for attachment in plan:
        device = attachment.device_id
        if not device and attachment.resource_name:
            device = _next_free(attachment, allocated, used, pod=pod)
            used.add(device)
        placed.append(with_device(attachment, device, conf=conf, container_id=container_id) if device else attachment)
    return placed


def with_device(attachment: Attachment, device: str, *, conf: DeviceSettings, container_id: str) -> Attachment:
    """`attachment` handed `device`: deviceID in each plugin and in the capability args, and
    the device-info file prepared for its delegate."""
    target = devinfo.cni_path(conf.device_info_dir, attachment.network, container_id, attachment.ifname)
    if target is not None:
        devinfo.prepare(conf.device_info_dir, resource=attachment.resource_name, device_id=device, target=target)
    extra: dict[str, Any] = {DEVICE_ID: device}
    if target is not None:
        extra[DEVICE_INFO_FILE] = target
    conflist = inject(attachment.conflist, extra)
    capability_args = {**attachment.capability_args, DEVICE_ID: device}
    return msgspec.structs.replace(attachment, conflist=conflist, device_id=device, capability_args=capability_args)


def inject(network: Conflist, keys: Mapping[str, Any]) -> Conflist:
    """Every plugin of `network` with `keys` set (Multus sets deviceID in each plugin of a
    conflist). To be unified with meta.netconfs.inject_device_id once that lands."""
    return network.replace(plugins=[{**plugin, **keys} for plugin in network.plugins])


def device_infos(plan: Sequence[Attachment], *, conf: DeviceSettings, container_id: str) -> dict[str, dict[str, Any]]:
    """network-status `device-info` by ifname, for the attachments that got a device."""
    infos: dict[str, dict[str, Any]] = {}
    for attachment in plan:
        if not attachment.device_id:
            continue
        path = devinfo.cni_path(conf.device_info_dir, attachment.network, container_id, attachment.ifname)
        info = devinfo.for_status(path, attachment.device_id)
        if info is not None:
            infos[attachment.ifname] = info
    return infos


def forget(attachments: Sequence[Any], *, conf: DeviceSettings, container_id: str) -> None:
    """After a DEL: remove the device-info files netplex wrote for these cached attachments
    (those whose config carries a deviceID). Paths are computed, never read from the cache."""
    for attachment in attachments:
        plugins = attachment.conflist.get("plugins") or []
        if not any(isinstance(plugin, dict) and plugin.get(DEVICE_ID) for plugin in plugins):
            continue
        path = devinfo.cni_path(conf.device_info_dir, attachment.network, container_id, attachment.ifname)
        if path is not None:
            devinfo.remove(path)


def _next_free(attachment: Attachment, allocated: kubelet.Devices, used: set[str], *, pod: Pod) -> str:
    resource = attachment.resource_name
    devices = sorted(allocated.get(resource, ()))
    where = f"network {attachment.network!r} ({attachment.ifname})"
    if not devices:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            f"{where}: the kubelet allocated no device of resource {resource!r} to pod {pod.namespace}/{pod.name} "
            f"(does one of its containers request {resource!r} in resources.limits?)",
        )
    free = [device for device in devices if device not in used]
    if not free:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            f"{where}: more networks than devices: pod {pod.namespace}/{pod.name} got {len(devices)} device(s) "
            f"of resource {resource!r} and earlier networks use them all (request one per network)",
        )
    return free[0]
