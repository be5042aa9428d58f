"""Moving an existing link between network namespaces: what host-device does with a NIC.

`move` hands link `name` of one namespace to another under a new name with one
RTM_SETLINK carrying IFLA_NET_NS_FD and IFLA_IFNAME, so the kernel checks the new name
in the target namespace and a clash with the old name there cannot happen. `HERE` names
the calling thread's own namespace (the node, from a plugin's point of view): it is
opened in the caller's thread before the worker enters the source namespace.

Also the lookups host-device needs: a link by MAC, the net devices of a PCI function or
of a sysfs device path, and flushing a link's addresses."""

from __future__ import annotations

import errno
import os
from typing import Any, Final

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from delegates.netlink import _nl, errors, links
from delegates.netlink import netns as _netns

__all__ = ["HERE", "by_mac", "flush_addresses", "move", "net_devices_of"]

HERE: Final = "/proc/thread-self/ns/net"  # the calling thread's namespace


def move(name: str, *, source: str | None, target: str, new_name: str, alias: str | None = None) -> links.Link:
    """Move link `name` from namespace `source` (None: the caller's) into `target` (a path,
    or `HERE`) as `new_name`, down; `alias` (when given, "" clears it) is set on the way.
    Returns the link as the target sees it. `LinkNotFound` when `name` is not in
    `source`, `LinkExists` when `new_name` is taken in `target` (the link then stays in
    `source` under its name)."""
    target_ns = None if target == HERE else target
    if links.get(target_ns, new_name) is not None:
        raise errors.LinkExists("move", new_name)
    try:
        _set_netns(name, source=source, target=target, new_name=new_name, alias=alias)
    except errors.NetlinkFailure:
        # The kernel changes the namespace before the name: a name taken meanwhile leaves
        # the link in the target under its old name. Send it back where it was.
        if links.get(target_ns, name) is not None and links.get(source, name) is None:
            back = HERE if source is None else source
            _set_netns(name, source=target_ns, target=back, new_name=name, alias=None)
        raise
    found = links.get(target_ns, new_name)
    if found is None:
        raise errors.LinkNotFound("move", new_name)
    return found


def _set_netns(name: str, *, source: str | None, target: str, new_name: str, alias: str | None) -> None:
    with _netns.opened(target) as target_fd:

        def apply(ipr: IPRoute) -> None:
            index = _nl.require_index(ipr, name, op="move")
            with _nl.translated("set down", name):
                ipr.link("set", index=index, state="down")
            if alias is not None:
                with _nl.translated("set alias of", name):
                    ipr.link("set", index=index, ifalias=alias)
            request: dict[str, Any] = {"index": index, "net_ns_fd": target_fd}
            if new_name != name:
                request["ifname"] = new_name
            try:
                ipr.link("set", **request)
            except NetlinkError as exc:
                target_name = new_name if exc.code == errno.EEXIST else name
                raise errors.from_errno(exc.code, op="move", target=target_name) from exc

        _netns.run(source, apply)


def by_mac(netns: str | None, mac: str) -> links.Link | None:
    """The first link (by ifindex) of the namespace with hardware address `mac`."""
    wanted = mac.lower()
    for link in links.list_links(netns):
        if link.mac.lower() == wanted and link.kind != "bridge":
            return link
    return None


def net_devices_of(sysfs_device: str) -> list[str]:
    """The net device names of a sysfs device directory, sorted, as the caller's namespace
    sees sysfs: `<dir>/net/*` (a NIC, an SR-IOV VF), else `<dir>/virtio*/net/*` (a
    virtio-net PCI function, whose net device hangs off the virtio device). Empty when
    there are none."""
    found = _listed(os.path.join(sysfs_device, "net"))
    if found:
        return found
    try:
        children = sorted(os.listdir(sysfs_device))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for child in children:
        if child.startswith("virtio"):
            found += _listed(os.path.join(sysfs_device, child, "net"))
    return sorted(found)


def _listed(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []


def flush_addresses(netns: str | None, name: str) -> None:
    """Remove every address of link `name` (IPv4 and IPv6, every scope)."""

    def apply(ipr: IPRoute) -> None:
        index = _nl.index_of(ipr, name)
        if index is None:
            return
        for msg in ipr.get_addr(index=index):
            request: dict[str, Any] = {
                "index": index, "family": msg["family"], "address": msg.get("IFA_ADDRESS"),
                "prefixlen": msg["prefixlen"],
            }
            try:
                ipr.addr("del", **request)
            except NetlinkError as exc:
                if exc.code not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                    raise errors.from_errno(exc.code, op="flush addresses of", target=name) from exc

    _netns.run(netns, apply)
