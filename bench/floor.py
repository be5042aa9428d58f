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
