"""host-device: move an existing node interface (a NIC, an SR-IOV VF, or any link) into
the pod under the requested name, and give it back to the node on DEL.

Reads the reference plugin's keys (containernetworking/plugins, plugins/main/host-device):
`device` (a name), `hwaddr` (a MAC), `kernelpath` (a sysfs device path), `pciBusID` (a
PCI address), one of them; a meta-plugin's `deviceID` (Multus, netplex) or
`runtimeConfig.deviceID` (capability "deviceID") stands for `pciBusID` when no other key
names the device. Optional `ipam` (absent or `{}`: no addresses) and `mtu`.

ADD finds the device in the node's namespace, records who has it in the link's alias
(`netplex-hd:<original name>:<attachment digest>`, which travels with the link), moves it
into the pod as CNI_IFNAME in one netlink request, sets the MTU, the addresses and routes
from IPAM, and brings it up. Its MAC, MTU and PCI address are in the result.

DEL releases the addresses, then moves the link back to the node under its original name,
down, with no addresses and the alias cleared, so the next pod can take it. When the pod's
namespace is gone, the kernel has already returned a physical device to the initial
namespace (under its pod name, or `dev<N>` on a clash); DEL finds it there by the alias
and restores it. A virtual link (a veth standing in for a NIC) is destroyed with the
namespace instead: nothing is left to return, and DEL succeeds. GC returns every device
on the node that still carries the alias of an attachment that is no longer valid.

Departures from the reference, on purpose: a bad config is error 7 naming the key; DEL
works without the namespace; a device another attachment holds is refused by name."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from typing import Annotated

import msgspec

from cni.config import NetConf, load_conf
from cni.errors import CniError, Code, MultiError
from cni.result import Interface, Result
from cni.skel import CmdArgs, Plugin, run
from delegates import common, ipam
from delegates.ipam import iface
from delegates.macvlan import sublink
from delegates.netlink import errors as nlerrors
from delegates.netlink import links, move

log = logging.getLogger(__name__)

ALIAS_PREFIX = "netplex-hd:"
PCI_DEVICES = "/sys/bus/pci/devices"
SYS_ROOT = "/sys"
_PCI_ADDRESS = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_IFNAME = re.compile(r"^[^/:\s]{1,15}$")


class HostDeviceConf(NetConf, frozen=True, kw_only=True):
    """The host-device plugin's config: the generic keys plus the reference plugin's."""

    device: str = ""
    hwaddr: str = ""
    kernelpath: str = ""
    pci_bus_id: str = msgspec.field(default="", name="pciBusID")
    device_id: str = msgspec.field(default="", name="deviceID")  # handed by the meta-plugin
    mtu: Annotated[int, msgspec.Meta(ge=0)] = 0

    def __post_init__(self) -> None:
        if self.device and not _IFNAME.match(self.device):
            raise ValueError(f"device: {self.device!r} is not an interface name")
        if self.hwaddr:
            msgspec.structs.force_setattr(self, "hwaddr", common.parse_mac(self.hwaddr, where="hwaddr"))
        if self.kernelpath and (not os.path.isabs(self.kernelpath) or ".." in self.kernelpath.split("/")):
            raise ValueError(f"kernelpath: {self.kernelpath!r} is not an absolute sysfs path")
        if self.pci_bus_id and not _PCI_ADDRESS.match(self.pci_bus_id):
            raise ValueError(f"pciBusID: {self.pci_bus_id!r} is not a PCI address (like 0000:00:04.0)")
        msgspec.structs.force_setattr(self, "pci_bus_id", self.pci_bus_id.lower())


def cmd_add(args: CmdArgs) -> Result:
    conf = load_conf(HostDeviceConf, args.stdin)
    layer3 = sublink.has_ipam(conf)
    with common.netlink_errors("host-device"):
        name, pci = _find_device(conf)
        _refuse_taken(name)
    marker = _alias(name, args)
    with contextlib.ExitStack() as undo:
        with common.netlink_errors("host-device"):
            try:
                link = move.move(name, source=None, target=args.netns, new_name=args.ifname, alias=marker)
            except nlerrors.NetlinkFailure as exc:
                with contextlib.suppress(nlerrors.NetlinkFailure):  # it stayed on the node: unmark it
                    links.set_alias(None, name, "")
                if isinstance(exc, nlerrors.LinkExists):
                    raise CniError(
                        Code.INVALID_NETWORK_CONFIG, f'CNI_IFNAME: "{args.ifname}" already exists in the container'
                    ) from exc
                raise
        undo.callback(sublink.quietly, _give_back, args.netns, args.ifname, name)
        with common.netlink_errors("host-device"):
            if conf.mtu and conf.mtu != link.mtu:
                links.set_mtu(args.netns, args.ifname, conf.mtu)
        mtu = conf.mtu or link.mtu
        found = Interface(name=args.ifname, mac=link.mac, mtu=mtu, sandbox=args.netns, pci_id=pci)
        result = msgspec.structs.replace(sublink.new_result(conf), interfaces=[found])
        if layer3:
            allocated = ipam.add(conf, args)
            undo.callback(sublink.quietly, ipam.delete, conf, args)
            result = sublink.addressed(result, allocated, where=f'ipam "{ipam.ipam_type(conf)}"')
        sublink.bring_up(args.netns, args.ifname, result, announce_from=link.mac if layer3 else None)
        undo.pop_all()
    return result


def cmd_del(args: CmdArgs) -> None:
    conf = load_conf(NetConf, args.stdin)  # generic keys only: a bad config must not block cleanup
    failures: list[CniError] = []
    if sublink.names_ipam(conf):
        try:
            ipam.delete(conf, args)
        except CniError as err:
            failures.append(err)
    try:
        with common.netlink_errors("DEL"):
            _return_device(args)
    except CniError as err:
        failures.append(err)
    if failures:
        raise failures[0] if len(failures) == 1 else MultiError(failures)


def cmd_check(args: CmdArgs) -> None:
    conf = load_conf(HostDeviceConf, args.stdin)
    prev, index = sublink.checked_prev_result(conf, args)
    with common.netlink_errors("CHECK"):
        link = links.get(args.netns, args.ifname)
    if link is None:
        raise CniError(Code.UNKNOWN_CONTAINER, f'check: interface "{args.ifname}" is missing from the container')
    if not (link.alias or "").startswith(ALIAS_PREFIX) or not (link.alias or "").endswith(_digest(args)):
        raise CniError(
            sublink.CHECK_FAILED, f'check: interface "{args.ifname}" is not the device this attachment moved'
        )
    want_mac = prev.interfaces[index].mac
    if want_mac and want_mac.lower() != link.mac.lower():
        raise CniError(
            sublink.CHECK_FAILED, f'check: interface "{args.ifname}" has mac {link.mac}, prevResult says {want_mac}'
        )
    iface.check(args.netns, args.ifname, prev, index)


def cmd_status(args: CmdArgs) -> None:
    sublink.cmd_status(args, HostDeviceConf)


def cmd_gc(args: CmdArgs) -> None:
    """Give back every device on the node whose alias names an attachment that is not in
    `cni.dev/valid-attachments`, then hand GC to the IPAM plugin."""
    conf = load_conf(NetConf, args.stdin)
    raw = conf.given_valid_attachments() or []
    valid = {
        _digest_of(str(item.get("containerID", "")), str(item.get("ifname", "")))
        for item in raw if isinstance(item, dict)
    }
    failures: list[CniError] = []
    with common.netlink_errors("GC"):
        node_links = links.list_links(None)
    for link in node_links:
        parsed = _parse_alias(link.alias)
        if parsed is None or parsed[1] in valid:
            continue
        try:
            with common.netlink_errors("GC"):
                _restore_on_node(link.name, parsed[0])
        except CniError as err:
            failures.append(err)
    if sublink.names_ipam(conf):
        try:
            ipam.gc(conf, args)
        except CniError as err:
            failures.append(err)
    if failures:
        raise failures[0] if len(failures) == 1 else MultiError(failures)


PLUGIN = Plugin(
    add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc, about="netplex host-device"
)


def main() -> int:
    return run(PLUGIN)


# --- finding the device -------------------------------------------------------------------


def _find_device(conf: HostDeviceConf) -> tuple[str, str]:
    """(the device's name on the node, its PCI address or "") for the config's selector."""
    runtime_id = conf.runtime_config.get("deviceID")
    device_id = runtime_id if isinstance(runtime_id, str) and runtime_id else conf.device_id
    pci = conf.pci_bus_id
    if device_id and not pci:
        if not _PCI_ADDRESS.match(device_id):
            raise CniError(
                Code.INVALID_NETWORK_CONFIG, f"deviceID: {device_id!r} is not a PCI address (like 0000:00:04.0)"
            )
        pci = device_id.lower()
    if conf.device:
        if links.get(None, conf.device) is None:
            raise CniError(Code.INVALID_NETWORK_CONFIG, f'device: no interface "{conf.device}" on the node')
        return conf.device, _pci_of(conf.device)
    if conf.hwaddr:
        link = move.by_mac(None, conf.hwaddr)
        if link is None:
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"hwaddr: no interface with MAC {conf.hwaddr} on the node")
        return link.name, _pci_of(link.name)
    if conf.kernelpath:
        return _only(move.net_devices_of(conf.kernelpath), key="kernelpath", value=conf.kernelpath), ""
    if pci:
        key = "pciBusID" if conf.pci_bus_id else "deviceID"
        name = _only(move.net_devices_of(os.path.join(PCI_DEVICES, pci)), key=key, value=pci)
        return name, pci
    raise CniError(
        Code.INVALID_NETWORK_CONFIG, 'device: specify one of "device", "hwaddr", "kernelpath", "pciBusID" or "deviceID"'
    )


def _only(names: list[str], *, key: str, value: str) -> str:
    if not names:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            f"{key}: no network interface of device {value!r} on the node (no such device, no net driver bound, "
            "or its interface is in a pod)",
        )
    return names[0]


def _pci_of(name: str) -> str:
    """The PCI address behind interface `name` on the node, "" for a virtual link."""
    target = os.path.realpath(os.path.join(SYS_ROOT, "class", "net", name, "device"))
    if os.path.basename(target).startswith("virtio"):  # virtio-net: the PCI function is its parent
        target = os.path.dirname(target)
    base = os.path.basename(target)
    return base if _PCI_ADDRESS.match(base) and "/pci" in target else ""


def _refuse_taken(name: str) -> None:
    link = links.get(None, name)
    if link is not None and _parse_alias(link.alias) is not None:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            f'device "{name}" is marked as held by another attachment (alias {link.alias!r}); '
            "its DEL or GC gives it back",
        )


# --- giving it back -----------------------------------------------------------------------


def _return_device(args: CmdArgs) -> None:
    """Move the attachment's device back to the node, wherever it is now."""
    digest = _digest(args)
    if args.netns:
        try:
            link = links.get(args.netns, args.ifname)
        except nlerrors.NetnsNotFound:
            link = None
        parsed = _parse_alias(link.alias) if link is not None else None
        if link is not None and parsed is not None and parsed[1] == digest:
            _give_back(args.netns, args.ifname, parsed[0])
            return
    for link in links.list_links(None):  # the namespace is gone: the kernel returned it
        parsed = _parse_alias(link.alias)
        if parsed is not None and parsed[1] == digest:
            _restore_on_node(link.name, parsed[0])
            return


def _give_back(netns: str, ifname: str, original: str) -> None:
    try:
        move.flush_addresses(netns, ifname)
        move.move(ifname, source=netns, target=move.HERE, new_name=original, alias="")
    except nlerrors.LinkExists:
        # the node has a new link of that name meanwhile: return it under its pod name
        log.warning("host-device: %r is taken on the node; returning the device as %r", original, ifname)
        move.move(ifname, source=netns, target=move.HERE, new_name=ifname, alias="")
        _clean(ifname)


def _restore_on_node(name: str, original: str) -> None:
    """A device the kernel returned to the node: its original name, down, bare."""
    links.set_down(None, name)
    if name != original:
        try:
            links.rename(None, name, original)
            name = original
        except nlerrors.LinkExists:
            log.warning("host-device: %r is taken on the node; leaving the device as %r", original, name)
    _clean(name)


def _clean(name: str) -> None:
    move.flush_addresses(None, name)
    links.set_alias(None, name, "")
    links.set_down(None, name)


def _alias(original: str, args: CmdArgs) -> str:
    return f"{ALIAS_PREFIX}{original}:{_digest(args)}"


def _digest(args: CmdArgs) -> str:
    return _digest_of(args.container_id, args.ifname)


def _digest_of(container_id: str, ifname: str) -> str:
    return hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()[:16]


def _parse_alias(alias: str | None) -> tuple[str, str] | None:
    """(original name, attachment digest) from a host-device alias, else None."""
    if not alias or not alias.startswith(ALIAS_PREFIX):
        return None
    original, sep, digest = alias[len(ALIAS_PREFIX):].rpartition(":")
    return (original, digest) if sep and original and digest else None
