"""CHECK for the bridge delegate: is the attachment of prevResult still there as ADD left it?

As the reference plugin checks it: the bridge exists with the MAC and promiscuous mode of
the result and config; the container interface is a veth in the sandbox with the result's
MAC; a host veth of the result is its peer and a port of the bridge; the container has the
result's addresses and routes. netplex also checks that the port is isolated exactly when
`portIsolation` says so. Every failure is a CniError naming the object: 3 when something
is missing, 999 when it differs (as `delegates.ipam.iface.check`).
"""

from __future__ import annotations

from cni.errors import CniError, Code
from cni.result import Interface, Result
from delegates import common
from delegates.bridge.config import BridgeConf
from delegates.netlink import links


def check_links(conf: BridgeConf, result: Result, *, netns: str, ifname: str) -> None:
    """The link-level half of CHECK (addresses and routes are IPAM's `iface.check`)."""
    bridge_entry = next((i for i in result.interfaces if i.name == conf.bridge and not i.sandbox), None)
    container_entry = next((i for i in result.interfaces if i.name == ifname and i.sandbox == netns), None)
    if bridge_entry is None:
        raise _missing(f"prevResult: no interface for bridge {conf.bridge!r}")
    if container_entry is None:
        raise _missing(f"prevResult: no interface {ifname!r} in sandbox {netns!r}")
    with common.netlink_errors("check"):
        bridge = links.get(None, conf.bridge)
        container = links.get(netns, ifname)
    bridge = _check_bridge(conf, bridge_entry, bridge)
    container = _check_container(container_entry, container, netns=netns)
    for entry in result.interfaces:
        if entry is bridge_entry or entry is container_entry or entry.sandbox:
            continue
        with common.netlink_errors("check"):
            host = links.get(None, entry.name)
        if host is not None and _is_peer(host, container, bridge_index=bridge.index):
            if entry.mac and entry.mac.lower() != host.mac:
                raise _fail(f"interface {entry.name!r} has MAC {host.mac}, not {entry.mac} as in prevResult")
            if bool(host.isolated) != conf.port_isolation:
                raise _fail(
                    f"bridge port {entry.name!r}: isolation is {'on' if host.isolated else 'off'}, "
                    f"portIsolation says {'on' if conf.port_isolation else 'off'}"
                )
            return
    raise _missing(f"no veth of prevResult connects {ifname!r} to bridge {conf.bridge!r}")


def _check_bridge(conf: BridgeConf, entry: Interface, bridge: links.Link | None) -> links.Link:
    if bridge is None:
        raise _missing(f"bridge {conf.bridge!r} not found")
    if bridge.kind != "bridge":
        raise _fail(f"interface {conf.bridge!r} is a {bridge.kind or 'device'}, not a bridge")
    if entry.mac and entry.mac.lower() != bridge.mac:
        raise _fail(f"bridge {conf.bridge!r} has MAC {bridge.mac}, not {entry.mac} as in prevResult")
    if bridge.promisc != conf.promisc_mode:
        raise _fail(
            f"bridge {conf.bridge!r}: promiscuous mode is {'on' if bridge.promisc else 'off'}, "
            f"promiscMode says {'on' if conf.promisc_mode else 'off'}"
        )
    return bridge


def _check_container(entry: Interface, link: links.Link | None, *, netns: str) -> links.Link:
    if link is None:
        raise _missing(f"interface {entry.name!r} not found in {netns!r}")
    if link.kind != "veth":
        raise _fail(f"interface {entry.name!r} in {netns!r} is a {link.kind or 'device'}, not a veth")
    if entry.mac and entry.mac.lower() != link.mac:
        raise _fail(f"interface {entry.name!r} has MAC {link.mac}, not {entry.mac} as in prevResult")
    return link


def _is_peer(host: links.Link, container: links.Link, *, bridge_index: int) -> bool:
    return (
        host.kind == "veth"
        and host.master_index == bridge_index
        and host.link_index == container.index
        and container.link_index == host.index
    )


def _missing(message: str) -> CniError:
    return CniError(Code.UNKNOWN_CONTAINER, f"check: {message}")


def _fail(message: str) -> CniError:
    return CniError(Code.INTERNAL, f"check: {message}")
