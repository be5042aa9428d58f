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

import errno
import os
from typing import TYPE_CHECKING, Any, Final

import msgspec

from delegates.netlink import _codec as c
from delegates.netlink import _conn, batch, errors
from delegates.netlink import netns as _netns

if TYPE_CHECKING:
    from pyroute2 import IPRoute

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
# IFALIASZ is 256 and the kernel counts the NUL this layer sends (as pyroute2 did): 255
# characters fail with ERANGE (iproute2, which sends no NUL, gets 255).
MAX_ALIAS: Final = 254

_IFF_UP = 0x1
_IFF_PROMISC = 0x100
_IFF_LOWER_UP = 0x10000
_AF_BRIDGE = 7
_RTEXT_FILTER_BRVLAN = 2
_BRIDGE_VLAN_INFO_PVID = 0x2
_BRIDGE_VLAN_INFO_UNTAGGED = 0x4
_BRIDGE_FLAGS_SELF = 0x2
_CREATE = c.NLM_F_CREATE | c.NLM_F_EXCL | c.NLM_F_ACK


class Link(msgspec.Struct, frozen=True):
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


def _decode(payload: memoryview) -> Link:
    """A `Link` from an RTM_NEWLINK answer (the kernel's view, as pyroute2 would read it)."""
    index, flags, a = c.decode_ifinfo(payload)
    info = c.attrs(a[c.IFLA_LINKINFO]) if c.IFLA_LINKINFO in a else {}
    kind = c.as_str(info[c.IFLA_INFO_KIND]) if c.IFLA_INFO_KIND in info else ""
    data = c.attrs(info[c.IFLA_INFO_DATA]) if c.IFLA_INFO_DATA in info else {}
    mode: str | None = None
    ipvlan_flags: str | None = None
    vlan_filtering: bool | None = None
    if kind in {"macvlan", "macvtap"} and c.IFLA_MACVLAN_MODE in data:
        mode = c.MACVLAN_MODE_NAMES.get(c.as_u32(data[c.IFLA_MACVLAN_MODE]))
    elif kind == "ipvlan":
        raw_mode = c.as_u16(data[c.IFLA_IPVLAN_MODE]) if c.IFLA_IPVLAN_MODE in data else None
        raw_flags = c.as_u16(data[c.IFLA_IPVLAN_FLAGS]) if c.IFLA_IPVLAN_FLAGS in data else 0
        mode = _name_of(IPVLAN_MODES, raw_mode)
        ipvlan_flags = _name_of(IPVLAN_FLAGS, raw_flags)
    elif kind == "bridge" and c.IFLA_BR_VLAN_FILTERING in data:
        vlan_filtering = bool(data[c.IFLA_BR_VLAN_FILTERING][0])
    hairpin: bool | None = None
    isolated: bool | None = None
    if c.IFLA_INFO_SLAVE_KIND in info and c.as_str(info[c.IFLA_INFO_SLAVE_KIND]) == "bridge":
        port = c.attrs(info[c.IFLA_INFO_SLAVE_DATA]) if c.IFLA_INFO_SLAVE_DATA in info else {}
        hairpin = bool(port[c.IFLA_BRPORT_MODE][0]) if c.IFLA_BRPORT_MODE in port else None
        isolated = bool(port[c.IFLA_BRPORT_ISOLATED][0]) if c.IFLA_BRPORT_ISOLATED in port else None
    master = c.as_u32(a[c.IFLA_MASTER]) if c.IFLA_MASTER in a else 0
    alias = c.as_str(a[c.IFLA_IFALIAS]) if c.IFLA_IFALIAS in a else ""
    return Link(
        name=c.as_str(a[c.IFLA_IFNAME]) if c.IFLA_IFNAME in a else "",
        index=index,
        kind=kind,
        mac=c.as_mac(a[c.IFLA_ADDRESS]) if c.IFLA_ADDRESS in a else "",
        mtu=c.as_u32(a[c.IFLA_MTU]) if c.IFLA_MTU in a else 0,
        up=bool(flags & _IFF_UP),
        master_index=master or None,
        group=c.as_u32(a[c.IFLA_GROUP]) if c.IFLA_GROUP in a else 0,
        link_index=c.as_u32(a[c.IFLA_LINK]) if c.IFLA_LINK in a else None,
        mode=mode,
        alias=alias or None,
        promisc=bool(flags & _IFF_PROMISC),
        lower_up=bool(flags & _IFF_LOWER_UP),
        link_netnsid=c.as_i32(a[c.IFLA_LINK_NETNSID]) if c.IFLA_LINK_NETNSID in a else None,
        ipvlan_flags=ipvlan_flags,
        vlan_filtering=vlan_filtering,
        hairpin=hairpin,
        isolated=isolated,
    )


def _name_of(names: tuple[str, ...], value: Any) -> str | None:
    if isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return None


_SKIP_STATS = c.u32(c.IFLA_EXT_MASK, c.RTEXT_FILTER_SKIP_STATS)


def _get(conn: _conn.Conn, name: str) -> Link | None:
    body = c.ifinfo() + c.string(c.IFLA_IFNAME, name) + _SKIP_STATS
    try:
        answers = conn.request(c.RTM_GETLINK, 0, body)
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.ENOENT, errno.EINVAL, errno.ERANGE):  # EINVAL/ERANGE: a bad name
            return None
        raise _conn.failure(exc, op="get link", target=name) from exc
    return _decode(answers[0]) if answers else None


def _must_get(conn: _conn.Conn, name: str, *, op: str) -> Link:
    link = _get(conn, name)
    if link is None:
        raise errors.LinkNotFound(op, name)
    return link


def _index_of(conn: _conn.Conn, name: str, *, op: str) -> int:
    return _must_get(conn, name, op=op).index


def _set(conn: _conn.Conn, name: str, op: str, *attrs: bytes, index: int = 0, flags: int = 0, change: int = 0) -> None:
    """RTM_SETLINK on link `index`, or on `name` when no index is given."""
    by_name = c.string(c.IFLA_IFNAME, name) if not index else b""
    body = c.ifinfo(index=index, flags=flags, change=change) + by_name + b"".join(attrs)
    try:
        conn.request(c.RTM_SETLINK, c.NLM_F_ACK, body)
    except OSError as exc:
        raise _conn.failure(exc, op=op, target=name) from exc


def _common(*, mtu: int | None, mac: str | None, group: int) -> bytes:
    out = b""
    if mtu is not None:
        out += c.u32(c.IFLA_MTU, mtu)
    if mac is not None:
        out += c.mac(c.IFLA_ADDRESS, mac.lower())
    if group:
        out += c.u32(c.IFLA_GROUP, group)
    return out


def _linkinfo(kind: str, data: bytes = b"") -> bytes:
    parts = [c.string(c.IFLA_INFO_KIND, kind)]
    if data:
        parts.append(c.attr(c.IFLA_INFO_DATA, data))
    return c.nested(c.IFLA_LINKINFO, parts)


# --- reading ------------------------------------------------------------------------------


def get(netns: str | None, name: str) -> Link | None:
    """The link called `name` in the namespace, or None if there is none."""
    with _conn.using(netns) as conn:
        return _get(conn, name)


def list_links(netns: str | None) -> list[Link]:
    """All links of the namespace, in ifindex order."""
    with _conn.using(netns) as conn:
        try:
            answers = conn.request(c.RTM_GETLINK, c.NLM_F_DUMP, c.ifinfo() + _SKIP_STATS)
        except OSError as exc:
            raise _conn.failure(exc, op="list links in", target=netns or "the current namespace") from exc
        return sorted((_decode(payload) for payload in answers), key=lambda link: link.index)


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
    ends get `mtu` and `group` (`group` 0: the invocation's group, `batch.current()`). The
    host end is brought up, with `host_alias` as its IFLA_IFALIAS if given; the peer stays
    down unless `peer_up`, so the caller can set its addresses and sysctls before it comes
    up. Returns (host end, peer end), each as its own namespace sees it.

    Raises `LinkExists` naming whichever end's name is taken, `NetnsNotFound` for either
    namespace, `ValueError` for an alias `set_alias` refuses.
    """
    if host_alias is not None:
        _check_alias(host_alias)
    group = group or batch.current()
    with _netns.opened(peer_netns) as peer_fd, _conn.using(host_netns) as conn:
        peer = c.ifinfo() + c.string(c.IFLA_IFNAME, peer_name) + c.u32(c.IFLA_NET_NS_FD, peer_fd)
        peer += _common(mtu=mtu, mac=peer_mac, group=group)
        body = c.ifinfo() + c.string(c.IFLA_IFNAME, host_name) + _common(mtu=mtu, mac=host_mac, group=group)
        body += _linkinfo("veth", c.attr(c.VETH_INFO_PEER, peer))
        try:
            conn.request(c.RTM_NEWLINK, _CREATE, body)
        except OSError as exc:
            target = host_name
            if exc.errno == errno.EEXIST and _get(conn, host_name) is None:
                target = peer_name  # the host name is free, so the clash is in the peer netns
            raise _conn.failure(exc, op="create veth", target=target) from exc
        try:
            # The kernel ignores IFLA_IFALIAS in RTM_NEWLINK, so the alias rides on the
            # request that brings the host end up.
            alias = c.string(c.IFLA_IFALIAS, host_alias) if host_alias is not None else b""
            _set(conn, host_name, "set up", alias, flags=_IFF_UP, change=_IFF_UP)
            host = _must_get(conn, host_name, op="create veth")
        except BaseException:
            _delete_by_name(conn, host_name)  # takes the peer with it
            raise
    try:
        with _conn.using(peer_netns) as pconn:
            if peer_up:
                _set(pconn, peer_name, "set up", flags=_IFF_UP, change=_IFF_UP)
            peer_link = _must_get(pconn, peer_name, op="create veth")
    except BaseException:
        delete_if_exists(host_netns, host_name)
        raise
    return host, peer_link


def _delete_by_name(conn: _conn.Conn, name: str) -> bool:
    """RTM_DELLINK by name; False if there was no such link."""
    try:
        conn.request(c.RTM_DELLINK, c.NLM_F_ACK, c.ifinfo() + c.string(c.IFLA_IFNAME, name))
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.EINVAL, errno.ERANGE):  # gone (e.g. with its veth peer), or no such name
            return False
        raise _conn.failure(exc, op="delete link", target=name) from exc
    return True


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
    Raises `WrongLinkKind` if `name` exists and is not a bridge. A bridge is shared by
    pods, so it never joins an invocation's interface group.
    """
    address = (mac or bridge_mac(name)).lower()
    with _conn.using(netns) as conn:
        existing = _get(conn, name)
        if existing is None:
            body = c.ifinfo() + c.string(c.IFLA_IFNAME, name) + _common(mtu=mtu, mac=address, group=0)
            body += _linkinfo("bridge", c.u8(c.IFLA_BR_VLAN_FILTERING, 1) if vlan_filtering else b"")
            try:
                conn.request(c.RTM_NEWLINK, _CREATE, body)
            except OSError as exc:
                if exc.errno != errno.EEXIST:  # EEXIST: a concurrent ADD made it first
                    raise _conn.failure(exc, op="create bridge", target=name) from exc
            existing = _must_get(conn, name, op="create bridge")
        if existing.kind != "bridge":
            raise errors.WrongLinkKind(
                "create bridge",
                name,
                message=f"a link of kind {existing.kind or 'device'!r} already has that name",
            )
        changed = False
        if vlan_filtering and not existing.vlan_filtering:
            body = c.ifinfo(index=existing.index) + _linkinfo("bridge", c.u8(c.IFLA_BR_VLAN_FILTERING, 1))
            try:
                conn.request(c.RTM_NEWLINK, c.NLM_F_ACK, body)
            except OSError as exc:
                raise _conn.failure(exc, op="configure bridge", target=name) from exc
            changed = True
        if promisc and not existing.promisc:
            _set(conn, name, "configure bridge", index=existing.index, flags=_IFF_PROMISC, change=_IFF_PROMISC)
            changed = True
        if not existing.up:
            _set(conn, name, "configure bridge", index=existing.index, flags=_IFF_UP, change=_IFF_UP)
            changed = True
        return _must_get(conn, name, op="create bridge") if changed else existing


def bridge_mac(name: str) -> str:
    """A stable locally administered unicast MAC for bridge `name` on this machine."""
    try:
        with open("/etc/machine-id", "rb") as file:
            machine = file.read().strip()
    except OSError:
        machine = b""
    import hashlib  # bridge creation only: not on every call's path

    digest = bytearray(hashlib.sha256(machine + b"\0netplex-bridge\0" + name.encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02  # unicast, locally administered
    return ":".join(f"{byte:02x}" for byte in digest)


def set_hairpin(netns: str | None, port_name: str, on: bool) -> None:
    """Turn hairpin mode (reflect frames back out the port they came in) on a bridge port."""
    from delegates.netlink import _nl

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
    from delegates.netlink import _nl

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
    link = get(netns, port)
    if link is None:
        raise errors.LinkNotFound(op, port)
    from delegates.netlink import _nl

    def apply(ipr: IPRoute) -> None:
        spec: dict[str, Any] = {"index": link.index, "vlan_info": {"vid": vid, "flags": flags}}
        if link.kind == "bridge":
            spec["vlan_flags"] = _BRIDGE_FLAGS_SELF  # the bridge device's own VLAN entry
        with _nl.translated(op, port):
            ipr.vlan_filter(command, **spec)

    _netns.run(netns, apply)


def bridge_vlans(netns: str | None, port: str) -> list[tuple[int, bool, bool]]:
    """The VLANs of bridge port `port` as (vid, pvid, untagged), sorted by vid."""
    from delegates.netlink import _nl

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
    `netns` itself when `link_in_container`. `group` 0 means the invocation's group
    (`batch.current()`). Raises `LinkNotFound` for a missing master, `LinkExists` if
    `ifname` is taken in `netns`, `ValueError` for an unknown mode.
    """
    if mode not in MACVLAN_MODES:
        raise ValueError(f'unknown macvlan mode "{mode}"')
    data = c.u32(c.IFLA_MACVLAN_MODE, c.MACVLAN_MODE_BITS[mode])
    return _create_on_master(
        "macvlan",
        ifname,
        _common(mtu=mtu, mac=mac, group=group or batch.current()) + _linkinfo("macvlan", data),
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
    data = c.u16(c.IFLA_IPVLAN_MODE, IPVLAN_MODES.index(mode)) + c.u16(c.IFLA_IPVLAN_FLAGS, IPVLAN_FLAGS.index(flags))
    return _create_on_master(
        "ipvlan",
        ifname,
        _common(mtu=mtu, mac=None, group=group or batch.current()) + _linkinfo("ipvlan", data),
        master=master,
        netns=netns,
        master_netns=master_netns,
        link_in_container=link_in_container,
    )


def _create_on_master(
    kind: str,
    ifname: str,
    spec: bytes,
    *,
    master: str,
    netns: str,
    master_netns: str | None,
    link_in_container: bool,
) -> Link:
    op = f"create {kind}"

    def add(conn: _conn.Conn, target_fd: int | None) -> None:
        master_index = _index_of(conn, master, op=f"find {kind} master")
        body = c.ifinfo() + c.string(c.IFLA_IFNAME, ifname) + c.u32(c.IFLA_LINK, master_index) + spec
        if target_fd is not None:
            body += c.u32(c.IFLA_NET_NS_FD, target_fd)
        try:
            conn.request(c.RTM_NEWLINK, _CREATE, body)
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP:
                raise errors.KindNotSupported(
                    op, ifname, message=f'link kind "{kind}" is not supported by this kernel'
                ) from exc
            raise _conn.failure(exc, op=op, target=ifname) from exc

    if link_in_container:
        with _conn.using(netns) as conn:
            add(conn, None)
    else:
        with _netns.opened(netns) as fd, _conn.using(master_netns) as conn:
            add(conn, fd)
    try:
        with _conn.using(netns) as conn:
            return _must_get(conn, ifname, op=op)
    except BaseException:
        delete_if_exists(netns, ifname)
        raise


# --- changing a link ----------------------------------------------------------------------


def _change(netns: str | None, name: str, op: str, *attrs: bytes, flags: int = 0, change: int = 0) -> None:
    with _conn.using(netns) as conn:
        _set(conn, name, op, *attrs, flags=flags, change=change)


def set_up(netns: str | None, name: str) -> None:
    """Bring link `name` administratively up."""
    _change(netns, name, "set up", flags=_IFF_UP, change=_IFF_UP)


def set_down(netns: str | None, name: str) -> None:
    """Bring link `name` administratively down."""
    _change(netns, name, "set down", flags=0, change=_IFF_UP)


def set_mtu(netns: str | None, name: str, mtu: int) -> None:
    """Set the MTU of link `name`."""
    _change(netns, name, "set mtu of", c.u32(c.IFLA_MTU, mtu))


def set_mac(netns: str | None, name: str, mac: str) -> None:
    """Set the MAC address of link `name`."""
    try:
        value = c.mac(c.IFLA_ADDRESS, mac.lower())
    except ValueError as exc:
        raise errors.NetlinkFailure("set mac of", name, errno.EINVAL) from exc
    _change(netns, name, "set mac of", value)


def set_promisc(netns: str | None, name: str, on: bool) -> None:
    """Turn promiscuous mode of link `name` on or off."""
    _change(netns, name, "set promisc on", flags=_IFF_PROMISC if on else 0, change=_IFF_PROMISC)


def set_group(netns: str | None, name: str, group: int) -> None:
    """Put link `name` into interface group `group` (0 is the default group)."""
    _change(netns, name, "set group of", c.u32(c.IFLA_GROUP, group))


def set_alias(netns: str | None, name: str, alias: str) -> None:
    """Set the alias (IFLA_IFALIAS, `ip link ... alias`) of link `name`; "" clears it.

    The alias is free text the kernel keeps for whoever reads the link; netplex uses it
    to say which attachment a host-side link belongs to. Raises `ValueError` for an alias
    of more than `MAX_ALIAS` bytes (UTF-8) or one containing NUL.
    """
    _check_alias(alias)
    _change(netns, name, "set alias of", c.string(c.IFLA_IFALIAS, alias))


def _check_alias(alias: str) -> None:
    if len(alias.encode()) > MAX_ALIAS:
        raise ValueError(f"interface alias is longer than {MAX_ALIAS} bytes")
    if "\0" in alias:
        raise ValueError("interface alias contains a NUL character")


def rename(netns: str | None, name: str, new_name: str) -> None:
    """Rename link `name` to `new_name` (the kernel refuses while the link is up)."""
    with _conn.using(netns) as conn:
        index = _index_of(conn, name, op="rename")
        _set(conn, name, "rename", c.string(c.IFLA_IFNAME, new_name), index=index)


def set_master(netns: str | None, name: str, master: str | None) -> None:
    """Enslave link `name` to `master` (a bridge, say); `None` releases it."""
    op = f'attach to "{master}"' if master else "release"
    with _conn.using(netns) as conn:
        master_index = _index_of(conn, master, op=f"attach {name} to") if master else 0
        _set(conn, name, op, c.u32(c.IFLA_MASTER, master_index))


# --- deleting -----------------------------------------------------------------------------


def delete_if_exists(netns: str | None, name: str) -> bool:
    """Delete link `name`; True if it was deleted, False if it or the namespace was gone."""
    try:
        with _conn.using(netns) as conn:
            return _delete_by_name(conn, name)
    except errors.NetnsNotFound:
        return False


def delete_group(netns: str | None, group: int) -> bool:
    """Delete every link of interface group `group` with one RTM_DELLINK (IFLA_GROUP).

    Like `ip link delete group N`: the kernel unregisters them as a batch, paying one RCU
    grace period instead of one per link. True if any link was deleted; a missing
    namespace or an empty group is not an error. Group 0 (every link's default) is refused.
    A group holding a link the kernel cannot delete (a physical NIC) fails whole with
    errno EOPNOTSUPP, deleting nothing.
    """
    if group <= 0:
        raise ValueError(f"refusing to delete interface group {group}: only groups above 0")
    try:
        with _conn.using(netns) as conn:
            try:
                conn.request(c.RTM_DELLINK, c.NLM_F_ACK, c.ifinfo() + c.u32(c.IFLA_GROUP, group))
            except OSError as exc:
                if exc.errno == errno.ENODEV:  # no link in the group
                    return False
                raise _conn.failure(exc, op="delete links of group", target=str(group)) from exc
            return True
    except errors.NetnsNotFound:
        return False
