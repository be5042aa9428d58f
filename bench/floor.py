"""The raw floor: the kernel operations of one pod's ADD and DEL done directly with
pyroute2, in one process, with no CNI machinery (no config parsing, no IPAM files, no
cache, no API): what netplex's figures are divided by.

For a pod with a cluster network and three networks (bridge, bridge, macvlan), ADD is:
per bridge network one veth pair created with its peer directly in the pod namespace,
the host end enslaved to the bridge and up; the macvlan created on the uplink directly in
the pod namespace; then, inside the pod namespace (one thread that entered it, one
netlink socket), an address on each interface, each link up, and the default route via
the cluster network's gateway. The bridges exist already, as they do for every pod but
the first. DEL is timed two ways: one link at a time (each host veth, then the macvlan),
as the delegates delete, and as one batch (every link tagged with one interface group at
creation, removed with a single RTM_DELLINK in the pod namespace)."""

from __future__ import annotations

import dataclasses
import ipaddress
import time

from pyroute2 import IPRoute

from delegates.netlink import netns

GROUP = 0x6E70  # "np": the interface group the batch variant tags a pod's links with


@dataclasses.dataclass(frozen=True)
class Net:
    """One of the pod's networks as the floor makes it."""

    ifname: str
    kind: str  # "bridge" or "macvlan"
    master: str  # the bridge, or the macvlan's uplink
    subnet: str  # an IPv4 /16: the pod gets .<index>.<n>
    gateway: str = ""  # the default route's gateway (the cluster network only)


def ensure_bridges(nets: list[Net]) -> None:
    """Create the bridges (with the gateway address on the cluster one) in this namespace."""
    with IPRoute() as ipr:
        for net in nets:
            if net.kind != "bridge" or ipr.link_lookup(ifname=net.master):
                continue
            ipr.link("add", ifname=net.master, kind="bridge")
            index = ipr.link_lookup(ifname=net.master)[0]
            ipr.link("set", index=index, state="up")
            if net.gateway:
                prefix = ipaddress.ip_network(net.subnet).prefixlen
                ipr.addr("add", index=index, address=net.gateway, prefixlen=prefix)


def host_name(pod: int, index: int) -> str:
    return f"fl{pod:05d}x{index}"


def address(net: Net, pod: int) -> str:
    network = ipaddress.ip_network(net.subnet)
    return str(network.network_address + 256 + pod)


def add(nets: list[Net], *, pod: int, netns_path: str, group: int = 0) -> float:
    """ADD the pod's links; the seconds it took."""
    started = time.perf_counter()
    with netns.opened(netns_path) as pod_fd, IPRoute() as ipr:
        for index, net in enumerate(nets):
            extra = {"group": group} if group else {}
            if net.kind == "bridge":
                name = host_name(pod, index)
                ipr.link("add", ifname=name, kind="veth", peer={"ifname": net.ifname, "net_ns_fd": pod_fd, **extra},
                         **extra)
                link = ipr.link_lookup(ifname=name)[0]
                ipr.link("set", index=link, master=ipr.link_lookup(ifname=net.master)[0], state="up")
            else:
                ipr.link("add", ifname=net.ifname, kind="macvlan", macvlan_mode="bridge",
                         link=ipr.link_lookup(ifname=net.master)[0], net_ns_fd=pod_fd, **extra)

    def inside(pod_ipr: IPRoute) -> None:
        for net in nets:
            link = pod_ipr.link_lookup(ifname=net.ifname)[0]
            prefix = ipaddress.ip_network(net.subnet).prefixlen
            pod_ipr.addr("add", index=link, address=address(net, pod), prefixlen=prefix)
            pod_ipr.link("set", index=link, state="up")
            if net.gateway:
                pod_ipr.route("add", dst="0.0.0.0/0", gateway=net.gateway, oif=link)

    netns.run(netns_path, inside)
    return time.perf_counter() - started


def delete_one_by_one(nets: list[Net], *, pod: int, netns_path: str) -> float:
    """DEL link by link: each host veth (taking its peer), then the macvlan in the pod."""
    started = time.perf_counter()
    with IPRoute() as ipr:
        for index, net in enumerate(nets):
            if net.kind == "bridge":
                ipr.link("del", index=ipr.link_lookup(ifname=host_name(pod, index))[0])

    def inside(pod_ipr: IPRoute) -> None:
        for net in nets:
            if net.kind != "bridge":
                pod_ipr.link("del", index=pod_ipr.link_lookup(ifname=net.ifname)[0])

    netns.run(netns_path, inside)
    return time.perf_counter() - started


def delete_group(*, netns_path: str, group: int = GROUP) -> float:
    """DEL in one batch: every link of `group` in the pod namespace (veth peers go along)."""
    started = time.perf_counter()
    netns.run(netns_path, lambda pod_ipr: pod_ipr.link("del", index=0, group=group))
    return time.perf_counter() - started


# -- the kernel floor: the same operations as raw netlink messages -------------------------


def add_raw(nets: list[Net], *, pod: int, netns_path: str, group: int = 0) -> float:
    """ADD as `add`, but each operation one hand-built rtnetlink message on one socket per
    namespace (delegates.netlink._codec): what the kernel costs, with no library around it."""
    import socket

    from delegates.netlink import _codec as c
    from delegates.netlink import _conn

    flags = c.NLM_F_CREATE | c.NLM_F_EXCL | c.NLM_F_ACK
    extra = c.u32(c.IFLA_GROUP, group) if group else b""
    started = time.perf_counter()
    with _conn.session(), netns.opened(netns_path) as pod_fd, _conn.using(None) as node:
        for index, net in enumerate(nets):
            if net.kind == "bridge":
                name = host_name(pod, index)
                peer = c.ifinfo() + c.string(c.IFLA_IFNAME, net.ifname) + c.u32(c.IFLA_NET_NS_FD, pod_fd) + extra
                info = c.nested(c.IFLA_LINKINFO, [c.string(c.IFLA_INFO_KIND, "veth"),
                                                  c.attr(c.IFLA_INFO_DATA, c.attr(c.VETH_INFO_PEER, peer))])
                node.request(c.RTM_NEWLINK, flags, c.ifinfo() + c.string(c.IFLA_IFNAME, name) + extra + info)
                master = _raw_index(node, net.master)
                node.request(c.RTM_SETLINK, c.NLM_F_ACK, c.ifinfo(flags=1, change=1) + c.string(c.IFLA_IFNAME, name)
                             + c.u32(c.IFLA_MASTER, master))
            else:
                info = c.nested(c.IFLA_LINKINFO, [c.string(c.IFLA_INFO_KIND, "macvlan"),
                                                  c.attr(c.IFLA_INFO_DATA, c.u32(c.IFLA_MACVLAN_MODE, 4))])
                body = c.ifinfo() + c.string(c.IFLA_IFNAME, net.ifname) + extra
                body += c.u32(c.IFLA_LINK, _raw_index(node, net.master)) + c.u32(c.IFLA_NET_NS_FD, pod_fd) + info
                node.request(c.RTM_NEWLINK, flags, body)
        with _conn.using(netns_path) as inside:
            for net in nets:
                link = _raw_index(inside, net.ifname)
                prefix = ipaddress.ip_network(net.subnet).prefixlen
                ip = address(net, pod)
                inside.request(c.RTM_NEWADDR, flags, c.ifaddr(family=socket.AF_INET, prefixlen=prefix, index=link)
                               + c.ip(c.IFA_LOCAL, ip, socket.AF_INET) + c.ip(c.IFA_ADDRESS, ip, socket.AF_INET))
                inside.request(c.RTM_SETLINK, c.NLM_F_ACK, c.ifinfo(index=link, flags=1, change=1))
                if net.gateway:
                    body = c.rtmsg(family=socket.AF_INET, dst_len=0, table=254, proto=3, scope=0, kind=1)
                    body += c.ip(c.RTA_GATEWAY, net.gateway, socket.AF_INET) + c.u32(c.RTA_OIF, link)
                    inside.request(c.RTM_NEWROUTE, flags, body)
    return time.perf_counter() - started


def _raw_index(conn: object, name: str) -> int:
    from delegates.netlink import _codec as c

    answers = conn.request(c.RTM_GETLINK, 0, c.ifinfo() + c.string(c.IFLA_IFNAME, name))  # type: ignore[attr-defined]
    return c.decode_ifinfo(answers[0])[0]


def delete_group_raw(*, netns_path: str, group: int = GROUP) -> float:
    """DEL in one batch as one hand-built RTM_DELLINK on a socket opened in the pod."""
    from delegates.netlink import _codec as c
    from delegates.netlink import _conn

    started = time.perf_counter()
    with _conn.using(netns_path) as inside:
        inside.request(c.RTM_DELLINK, c.NLM_F_ACK, c.ifinfo() + c.u32(c.IFLA_GROUP, group))
    return time.perf_counter() - started
