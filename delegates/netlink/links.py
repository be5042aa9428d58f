"""Links: read, create (veth, bridge, macvlan, ipvlan), change and delete network interfaces.

Every function takes the namespace path first (`None`: the caller's own namespace, the
node's from a plugin's point of view) and does its netlink work in a `netns.run` worker.
Values in and out are typed (`Link`, names, ints); pyroute2 keywords stay in this module.

Links for a pod are created directly in the pod namespace, in one RTM_NEWLINK carrying
IFLA_NET_NS_FD (for a veth: in the peer's attributes). The kernel looks the master up in
the requesting namespace and the name up in the target one, so there is no temporary
name, no move and no rename, and a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
from collections.abc import Callable
from typing import Any, Final

from pyroute2 import IPRoute
from pyroute2.netlink import nla
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from delegates.netlink import _nl, errors
from delegates.netlink import netns as _netns

__all__ = [
    "IPVLAN_FLAGS",
    "IPVLAN_MODES",
    "MACVLAN_MODES",
    "MAX_ALIAS",
    "Link",
    "bridge_vlan_add",
    "bridge_vlan_del",
    "bridge_vlans",
    "create_ipvlan",
    "create_macvlan",
    "create_veth",
    "delete_group",
    "delete_if_exists",
    "ensure_bridge",
    "get",
    "list_links",
    "random_name",
    "rename",
    "set_alias",
    "set_down",
    "set_group",
    "set_hairpin",
    "set_mac",
    "set_master",
    "set_mtu",
    "set_port_isolated",
    "set_promisc",
    "set_up",
]

MACVLAN_MODES: Final = ("bridge", "private", "vepa", "passthru", "source")
IPVLAN_MODES: Final = ("l2", "l3", "l3s")  # IPVLAN_MODE_L2 = 0, L3 = 1, L3S = 2
IPVLAN_FLAGS: Final = ("bridge", "private", "vepa")  # 0, IPVLAN_F_PRIVATE = 1, IPVLAN_F_VEPA = 2
# IFALIASZ is 256, but pyroute2 sends IFLA_IFALIAS NUL-terminated and the kernel counts the
# NUL: 255 characters fail with ERANGE (iproute2, which sends no NUL, gets 255).
MAX_ALIAS: Final = 254

_IFF_UP = 0x1
_IFF_PROMISC = 0x100
_IFF_LOWER_UP = 0x10000
_AF_BRIDGE = 7
_RTEXT_FILTER_BRVLAN = 2
_BRIDGE_VLAN_INFO_PVID = 0x2
_BRIDGE_VLAN_INFO_UNTAGGED = 0x4
_BRIDGE_FLAGS_SELF = 0x2


class _IpvlanData(nla):  # type: ignore[misc]
    """IFLA_INFO_DATA for ipvlan; pyroute2 0.9 maps the mode but not IFLA_IPVLAN_FLAGS."""

    prefix = "IFLA_"
    nla_map = (
        ("IFLA_IPVLAN_UNSPEC", "none"),
        ("IFLA_IPVLAN_MODE", "uint16"),
        ("IFLA_IPVLAN_FLAGS", "uint16"),
    )


# register_link_kind is pyroute2's documented hook for link kinds. It is class-wide, so it
# is done once, at import, never while another thread may be decoding.
ifinfmsg.ifinfo.register_link_kind(module={"ipvlan": _IpvlanData})


@dataclasses.dataclass(frozen=True)
class Link:
    """A network interface as the kernel reports it in its namespace.

    `kind` is the rtnetlink kind ("veth", "bridge", "macvlan", ...), "" for devices
    without one (physical NICs, lo). `mode` is the macvlan or ipvlan mode, `ipvlan_flags`
    the ipvlan bridge/private/vepa flag. `link_index` is IFLA_LINK: the veth peer's or the
    macvlan master's index, in the namespace `link_netnsid` names when that is set.
    `vlan_filtering` is set for bridges, `hairpin` and `isolated` for bridge ports, None
    otherwise. `alias` is IFLA_IFALIAS (`ip link set ... alias`), None when unset.
    """

    name: str
    index: int
    kind: str
    mac: str
    mtu: int
    up: bool
    master_index: int | None
    group: int
    link_index: int | None
    mode: str | None
    alias: str | None = None
    promisc: bool = False
    lower_up: bool = False
    link_netnsid: int | None = None
    ipvlan_flags: str | None = None
    vlan_filtering: bool | None = None
    hairpin: bool | None = None
    isolated: bool | None = None


def _to_link(msg: Any) -> Link:
    kind = _nl.nested(msg, "IFLA_LINKINFO", "IFLA_INFO_KIND") or ""
    mode: str | None = None
    ipvlan_flags: str | None = None
    vlan_filtering: bool | None = None
    if kind in {"macvlan", "macvtap"}:
        raw = _nl.nested(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_MACVLAN_MODE")
        mode = None if raw is None else str(raw)
    elif kind == "ipvlan":
        raw_mode = _nl.nested(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_IPVLAN_MODE")
        raw_flags = _nl.nested(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_IPVLAN_FLAGS")
        mode = _name_of(IPVLAN_MODES, raw_mode)
        ipvlan_flags = _name_of(IPVLAN_FLAGS, raw_flags if raw_flags is not None else 0)
    elif kind == "bridge":
        raw = _nl.nested(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_BR_VLAN_FILTERING")
        vlan_filtering = bool(raw) if raw is not None else None
    hairpin: bool | None = None
    isolated: bool | None = None
    if _nl.nested(msg, "IFLA_LINKINFO", "IFLA_INFO_SLAVE_KIND") == "bridge":
        raw = _nl.nested(msg, "IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA", "IFLA_BRPORT_MODE")
        hairpin = bool(raw) if raw is not None else None
        raw = _nl.nested(msg, "IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA", "IFLA_BRPORT_ISOLATED")
        isolated = bool(raw) if raw is not None else None
    flags = int(msg["flags"])
    master = msg.get("IFLA_MASTER")
    link = msg.get("IFLA_LINK")
    index = int(msg["index"])
    return Link(
        name=str(msg.get("IFLA_IFNAME")),
        index=index,
        kind=str(kind),
        mac=str(msg.get("IFLA_ADDRESS") or ""),
        mtu=int(msg.get("IFLA_MTU") or 0),
        up=bool(flags & _IFF_UP),
        master_index=int(master) if master else None,
        group=int(msg.get("IFLA_GROUP") or 0),
        link_index=int(link) if link is not None else None,
        mode=mode,
        alias=msg.get("IFLA_IFALIAS") or None,
        promisc=bool(flags & _IFF_PROMISC),
        lower_up=bool(flags & _IFF_LOWER_UP),
        link_netnsid=msg.get("IFLA_LINK_NETNSID"),
        ipvlan_flags=ipvlan_flags,
        vlan_filtering=vlan_filtering,
        hairpin=hairpin,
        isolated=isolated,
    )


def _name_of(names: tuple[str, ...], value: Any) -> str | None:
    if isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return None


def _get(ipr: IPRoute, name: str) -> Link | None:
    try:
        msgs = ipr.link("get", ifname=name)
    except NetlinkError as exc:
        if exc.code in (errno.ENODEV, errno.ENOENT):
            return None
        raise errors.from_errno(exc.code, op="get link", target=name) from exc
    return _to_link(msgs[0]) if msgs else None


def _must_get(ipr: IPRoute, name: str, *, op: str) -> Link:
    link = _get(ipr, name)
    if link is None:
        raise errors.LinkNotFound(op, name)
    return link


# --- reading ------------------------------------------------------------------------------


def get(netns: str | None, name: str) -> Link | None:
    """The link called `name` in the namespace, or None if there is none."""
    return _netns.run(netns, lambda ipr: _get(ipr, name))


def list_links(netns: str | None) -> list[Link]:
    """All links of the namespace, in ifindex order."""

    def dump(ipr: IPRoute) -> list[Link]:
        with _nl.translated("list links in", netns or "the current namespace"):
            return sorted((_to_link(msg) for msg in ipr.link("dump")), key=lambda link: link.index)

    return _netns.run(netns, dump)


def random_name(prefix: str = "veth") -> str:
    """A fresh interface name: `prefix` plus random hex, at most 15 characters (IFNAMSIZ-1)."""
    if len(prefix) > 7:
        raise ValueError(f'interface name prefix "{prefix}" is longer than 7 characters')
    return prefix + os.urandom(4).hex()


# --- veth ---------------------------------------------------------------------------------


def create_veth(
    *,
    host_name: str,
    peer_name: str,
    peer_netns: str,
    mtu: int | None = None,
    peer_mac: str | None = None,
    host_netns: str | None = None,
    group: int = 0,
    host_mac: str | None = None,
    peer_up: bool = False,
    host_alias: str | None = None,
) -> tuple[Link, Link]:
    """Create a veth pair: `host_name` in `host_netns`, `peer_name` in `peer_netns`.

    One RTM_NEWLINK creates both ends with their final names, the peer directly inside
    `peer_netns`; nothing is renamed or moved, so a failure leaves nothing behind. Both
    ends get `mtu` and `group`. The host end is brought up, with `host_alias` as its
    IFLA_IFALIAS if given; the peer stays down unless `peer_up`, so the caller can set its
    addresses and sysctls before it comes up. Returns (host end, peer end), each as its
    own namespace sees it.

    Raises `LinkExists` naming whichever end's name is taken, `NetnsNotFound` for either
    namespace, `ValueError` for an alias `set_alias` refuses.
    """
    if host_alias is not None:
        _check_alias(host_alias)
    with _netns.opened(peer_netns) as peer_fd:

        def make(ipr: IPRoute) -> Link:
            peer: dict[str, Any] = {"ifname": peer_name, "net_ns_fd": peer_fd}
            spec: dict[str, Any] = {"ifname": host_name, "kind": "veth", "peer": peer}
            _put_common(spec, mtu=mtu, mac=host_mac, group=group)
            _put_common(peer, mtu=mtu, mac=peer_mac, group=group)
            try:
                ipr.link("add", **spec)
            except NetlinkError as exc:
                target = host_name
                if exc.code == errno.EEXIST and _nl.index_of(ipr, host_name) is None:
                    target = peer_name  # the host name is free, so the clash is in the peer netns
                raise errors.from_errno(exc.code, op="create veth", target=target) from exc
            try:
                index = _nl.require_index(ipr, host_name, op="create veth")
                # The kernel ignores IFLA_IFALIAS in RTM_NEWLINK, so the alias rides on the
                # request that brings the host end up.
                up: dict[str, Any] = {"state": "up"} if host_alias is None else {"state": "up", "ifalias": host_alias}
                with _nl.translated("set up", host_name):
                    ipr.link("set", index=index, **up)
                return _must_get(ipr, host_name, op="create veth")
            except BaseException:
                _delete_quietly(ipr, host_name)  # takes the peer with it
                raise

        host = _netns.run(host_netns, make)

    def finish_peer(ipr: IPRoute) -> Link:
        if peer_up:
            index = _nl.require_index(ipr, peer_name, op="set up")
            with _nl.translated("set up", peer_name):
                ipr.link("set", index=index, state="up")
        return _must_get(ipr, peer_name, op="create veth")

    try:
        peer_link = _netns.run(peer_netns, finish_peer)
    except BaseException:
        delete_if_exists(host_netns, host_name)
        raise
    return host, peer_link


def _put_common(spec: dict[str, Any], *, mtu: int | None, mac: str | None, group: int) -> None:
    if mtu is not None:
        spec["mtu"] = mtu
    if mac is not None:
        spec["address"] = mac.lower()
    if group:
        spec["group"] = group


def _delete_quietly(ipr: IPRoute, name: str) -> None:
    index = _nl.index_of(ipr, name)
    if index is not None:
        with contextlib.suppress(NetlinkError):
            ipr.link("del", index=index)


# --- bridge -------------------------------------------------------------------------------


def ensure_bridge(
    name: str,
    *,
    netns: str | None = None,
    mtu: int | None = None,
    mac: str | None = None,
    vlan_filtering: bool = False,
    promisc: bool = False,
) -> Link:
    """The bridge `name`, created if missing, always up; idempotent and race-safe.

    A new bridge gets `mac`, or a locally administered MAC derived from its name and the
    machine id: an address set explicitly is kept by the kernel, whereas an unset one
    follows the bridge's lowest port and changes as pods come and go. An existing bridge
    keeps its MAC and MTU; `vlan_filtering` and `promisc` are only ever switched on.
    Raises `WrongLinkKind` if `name` exists and is not a bridge.
    """
    address = (mac or bridge_mac(name)).lower()

    def ensure(ipr: IPRoute) -> Link:
        existing = _get(ipr, name)
        if existing is None:
            spec: dict[str, Any] = {"ifname": name, "kind": "bridge", "address": address}
            if mtu is not None:
                spec["mtu"] = mtu
            if vlan_filtering:
                spec["br_vlan_filtering"] = 1
            try:
                ipr.link("add", **spec)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:  # EEXIST: a concurrent ADD made it first
                    raise errors.from_errno(exc.code, op="create bridge", target=name) from exc
            existing = _must_get(ipr, name, op="create bridge")
        if existing.kind != "bridge":
            raise errors.WrongLinkKind(
                "create bridge",
                name,
                message=f"a link of kind {existing.kind or 'device'!r} already has that name",
            )
        with _nl.translated("configure bridge", name):
            if vlan_filtering and not existing.vlan_filtering:
                ipr.link("set", index=existing.index, kind="bridge", br_vlan_filtering=1)
            if promisc and not existing.promisc:
                ipr.link("set", index=existing.index, flags=_IFF_PROMISC, change=_IFF_PROMISC)
            if not existing.up:
                ipr.link("set", index=existing.index, state="up")
        return _must_get(ipr, name, op="create bridge")

    return _netns.run(netns, ensure)


def bridge_mac(name: str) -> str:
    """A stable locally administered unicast MAC for bridge `name` on this machine."""
    try:
        with open("/etc/machine-id", "rb") as file:
            machine = file.read().strip()
    except OSError:
        machine = b""
    digest = bytearray(hashlib.sha256(machine + b"\0netplex-bridge\0" + name.encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02  # unicast, locally administered
    return ":".join(f"{byte:02x}" for byte in digest)


def set_hairpin(netns: str | None, port_name: str, on: bool) -> None:
    """Turn hairpin mode (reflect frames back out the port they came in) on a bridge port."""

    def apply(ipr: IPRoute) -> None:
        index = _nl.require_index(ipr, port_name, op="set hairpin on")
        with _nl.translated("set hairpin on", port_name):
            ipr.brport("set", index=index, mode=1 if on else 0)

    _netns.run(netns, apply)


def set_port_isolated(netns: str | None, port_name: str, on: bool) -> None:
    """Turn the isolated flag (IFLA_BRPORT_ISOLATED) of a bridge port on or off.

    Isolated ports of one bridge forward nothing to each other, only to and from the
    bridge's other (non-isolated) ports and the bridge device itself. Raises `LinkNotFound`
    for a missing port, a `NetlinkFailure` if `port_name` is not a bridge port.
    """

    def apply(ipr: IPRoute) -> None:
        index = _nl.require_index(ipr, port_name, op="set isolated on")
        with _nl.translated("set isolated on", port_name):
            ipr.brport("set", index=index, isolated=1 if on else 0)

    _netns.run(netns, apply)


def bridge_vlan_add(netns: str | None, port: str, vid: int, *, pvid: bool = False, untagged: bool = False) -> None:
    """Allow VLAN `vid` on bridge port `port` (the bridge itself: its own "self" entry).

    Needs a kernel with bridge VLAN filtering and the bridge's `vlan_filtering` on.
    """
    _bridge_vlan(netns, port, vid, "add", pvid=pvid, untagged=untagged)


def bridge_vlan_del(netns: str | None, port: str, vid: int) -> None:
    """Remove VLAN `vid` from bridge port `port`; a VLAN or port already gone is success."""
    try:
        _bridge_vlan(netns, port, vid, "del", pvid=False, untagged=False)
    except (errors.LinkNotFound, errors.NetnsNotFound):
        return
    except errors.NetlinkFailure as exc:
        if exc.errno not in (errno.ENOENT, errno.EINVAL):
            raise


def _bridge_vlan(netns: str | None, port: str, vid: int, command: str, *, pvid: bool, untagged: bool) -> None:
    if not 1 <= vid <= 4094:
        raise ValueError(f"vlan id {vid} is out of range 1-4094")
    flags = (_BRIDGE_VLAN_INFO_PVID if pvid else 0) | (_BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0)
    op = f"{'add' if command == 'add' else 'delete'} vlan {vid} on"

    def apply(ipr: IPRoute) -> None:
        link = _must_get(ipr, port, op=op)
        spec: dict[str, Any] = {"index": link.index, "vlan_info": {"vid": vid, "flags": flags}}
        if link.kind == "bridge":
            spec["vlan_flags"] = _BRIDGE_FLAGS_SELF  # the bridge device's own VLAN entry
        with _nl.translated(op, port):
            ipr.vlan_filter(command, **spec)

    _netns.run(netns, apply)


def bridge_vlans(netns: str | None, port: str) -> list[tuple[int, bool, bool]]:
    """The VLANs of bridge port `port` as (vid, pvid, untagged), sorted by vid."""

    def read(ipr: IPRoute) -> list[tuple[int, bool, bool]]:
        index = _nl.require_index(ipr, port, op="list vlans of")
        found: set[tuple[int, bool, bool]] = set()
        with _nl.translated("list vlans of", port):
            msgs = ipr.link("dump", family=_AF_BRIDGE, ext_mask=_RTEXT_FILTER_BRVLAN)
            for msg in msgs:
                if msg["index"] != index:
                    continue
                spec = msg.get("IFLA_AF_SPEC")
                if spec is None:
                    continue
                for info in spec.get_attrs("IFLA_BRIDGE_VLAN_INFO"):
                    flags = int(info["flags"])
                    found.add(
                        (
                            int(info["vid"]),
                            bool(flags & _BRIDGE_VLAN_INFO_PVID),
                            bool(flags & _BRIDGE_VLAN_INFO_UNTAGGED),
                        )
                    )
        return sorted(found)

    return _netns.run(netns, read)


# --- macvlan / ipvlan ---------------------------------------------------------------------


def create_macvlan(
    *,
    master: str,
    ifname: str,
    netns: str,
    mode: str,
    mtu: int | None = None,
    mac: str | None = None,
    master_netns: str | None = None,
    link_in_container: bool = False,
    group: int = 0,
) -> Link:
    """Create macvlan `ifname` inside `netns` on top of `master`, left down.

    `master` is looked up in `master_netns` (None: the caller's namespace), or inside
    `netns` itself when `link_in_container`. Raises `LinkNotFound` for a missing master,
    `LinkExists` if `ifname` is taken in `netns`, `ValueError` for an unknown mode.
    """
    if mode not in MACVLAN_MODES:
        raise ValueError(f'unknown macvlan mode "{mode}"')
    spec: dict[str, Any] = {"ifname": ifname, "kind": "macvlan", "macvlan_mode": mode}
    _put_common(spec, mtu=mtu, mac=mac, group=group)
    return _create_on_master(
        "macvlan",
        spec,
        master=master,
        netns=netns,
        master_netns=master_netns,
        link_in_container=link_in_container,
    )


def create_ipvlan(
    *,
    master: str,
    ifname: str,
    netns: str,
    mode: str = "l2",
    flags: str = "bridge",
    mtu: int | None = None,
    master_netns: str | None = None,
    link_in_container: bool = False,
    group: int = 0,
) -> Link:
    """Create ipvlan `ifname` inside `netns` on top of `master`, left down.

    `mode` is l2, l3 or l3s; `flags` bridge, private or vepa. An ipvlan shares its
    master's MAC, so there is no `mac`. Raises `KindNotSupported` on a kernel without
    ipvlan, otherwise as `create_macvlan`.
    """
    if mode not in IPVLAN_MODES:
        raise ValueError(f'unknown ipvlan mode "{mode}"')
    if flags not in IPVLAN_FLAGS:
        raise ValueError(f'unknown ipvlan flag "{flags}"')
    spec: dict[str, Any] = {
        "ifname": ifname,
        "kind": "ipvlan",
        "ipvlan_mode": IPVLAN_MODES.index(mode),
        "ipvlan_flags": IPVLAN_FLAGS.index(flags),
    }
    _put_common(spec, mtu=mtu, mac=None, group=group)
    return _create_on_master(
        "ipvlan",
        spec,
        master=master,
        netns=netns,
        master_netns=master_netns,
        link_in_container=link_in_container,
    )


def _create_on_master(
    kind: str,
    spec: dict[str, Any],
    *,
    master: str,
    netns: str,
    master_netns: str | None,
    link_in_container: bool,
) -> Link:
    ifname = str(spec["ifname"])
    op = f"create {kind}"

    def add(ipr: IPRoute, target_fd: int | None) -> None:
        master_index = _nl.require_index(ipr, master, op=f"find {kind} master")
        request = dict(spec, link=master_index)
        if target_fd is not None:
            request["net_ns_fd"] = target_fd
        try:
            ipr.link("add", **request)
        except NetlinkError as exc:
            if exc.code == errno.EOPNOTSUPP:
                raise errors.KindNotSupported(
                    op, ifname, message=f'link kind "{kind}" is not supported by this kernel'
                ) from exc
            raise errors.from_errno(exc.code, op=op, target=ifname) from exc

    if link_in_container:
        _netns.run(netns, lambda ipr: add(ipr, None))
    else:
        with _netns.opened(netns) as fd:
            _netns.run(master_netns, lambda ipr: add(ipr, fd))
    try:
        return _fetch(netns, ifname, op=op)
    except BaseException:
        delete_if_exists(netns, ifname)
        raise


def _fetch(netns: str | None, name: str, *, op: str) -> Link:
    def read(ipr: IPRoute) -> Link:
        return _must_get(ipr, name, op=op)

    return _netns.run(netns, read)


# --- changing a link ----------------------------------------------------------------------


def _change(netns: str | None, name: str, op: str, **request: Any) -> None:
    def apply(ipr: IPRoute) -> None:
        index = _nl.require_index(ipr, name, op=op)
        with _nl.translated(op, name):
            ipr.link("set", index=index, **request)

    _netns.run(netns, apply)


def set_up(netns: str | None, name: str) -> None:
    """Bring link `name` administratively up."""
    _change(netns, name, "set up", state="up")


def set_down(netns: str | None, name: str) -> None:
    """Bring link `name` administratively down."""
    _change(netns, name, "set down", state="down")


def set_mtu(netns: str | None, name: str, mtu: int) -> None:
    """Set the MTU of link `name`."""
    _change(netns, name, "set mtu of", mtu=mtu)


def set_mac(netns: str | None, name: str, mac: str) -> None:
    """Set the MAC address of link `name`."""
    _change(netns, name, "set mac of", address=mac.lower())


def set_promisc(netns: str | None, name: str, on: bool) -> None:
    """Turn promiscuous mode of link `name` on or off."""
    _change(netns, name, "set promisc on", flags=_IFF_PROMISC if on else 0, change=_IFF_PROMISC)


def set_group(netns: str | None, name: str, group: int) -> None:
    """Put link `name` into interface group `group` (0 is the default group)."""
    _change(netns, name, "set group of", group=group)


def set_alias(netns: str | None, name: str, alias: str) -> None:
    """Set the alias (IFLA_IFALIAS, `ip link ... alias`) of link `name`; "" clears it.

    The alias is free text the kernel keeps for whoever reads the link; netplex uses it
    to say which attachment a host-side link belongs to. Raises `ValueError` for an alias
    of more than `MAX_ALIAS` bytes (UTF-8) or one containing NUL.
    """
    _check_alias(alias)
    _change(netns, name, "set alias of", ifalias=alias)


def _check_alias(alias: str) -> None:
    if len(alias.encode()) > MAX_ALIAS:
        raise ValueError(f"interface alias is longer than {MAX_ALIAS} bytes")
    if "\0" in alias:
        raise ValueError("interface alias contains a NUL character")


def rename(netns: str | None, name: str, new_name: str) -> None:
    """Rename link `name` to `new_name` (the kernel refuses while the link is up)."""
    _change(netns, name, "rename", ifname=new_name)


def set_master(netns: str | None, name: str, master: str | None) -> None:
    """Enslave link `name` to `master` (a bridge, say); `None` releases it."""
    op = f'attach to "{master}"' if master else "release"

    def apply(ipr: IPRoute) -> None:
        index = _nl.require_index(ipr, name, op=op)
        master_index = _nl.require_index(ipr, master, op=f"attach {name} to") if master else 0
        with _nl.translated(op, name):
            ipr.link("set", index=index, master=master_index)

    _netns.run(netns, apply)


# --- deleting -----------------------------------------------------------------------------


def delete_if_exists(netns: str | None, name: str) -> bool:
    """Delete link `name`; True if it was deleted, False if it or the namespace was gone."""

    def delete(ipr: IPRoute) -> bool:
        index = _nl.index_of(ipr, name)
        if index is None:
            return False
        try:
            ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:  # deleted meanwhile, e.g. with its veth peer
                return False
            raise errors.from_errno(exc.code, op="delete link", target=name) from exc
        return True

    return _unless_netns_gone(netns, delete, default=False)


def delete_group(netns: str | None, group: int) -> bool:
    """Delete every link of interface group `group` with one RTM_DELLINK (IFLA_GROUP).

    Like `ip link delete group N`: the kernel unregisters them as a batch, paying one RCU
    grace period instead of one per link. True if any link was deleted; a missing
    namespace or an empty group is not an error. Group 0 (every link's default) is refused.
    """
    if group <= 0:
        raise ValueError(f"refusing to delete interface group {group}: only groups above 0")

    def delete(ipr: IPRoute) -> bool:
        try:
            ipr.link("del", index=0, group=group)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:  # no link in the group
                return False
            raise errors.from_errno(exc.code, op="delete links of group", target=str(group)) from exc
        return True

    return _unless_netns_gone(netns, delete, default=False)


def _unless_netns_gone(netns: str | None, fn: Callable[[IPRoute], bool], *, default: bool) -> bool:
    try:
        return _netns.run(netns, fn)
    except errors.NetnsNotFound:
        return default
