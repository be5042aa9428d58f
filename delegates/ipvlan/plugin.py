"""ipvlan: give the pod an interface that shares a host NIC's MAC, told apart by IP.

Behaves as the reference plugin (containernetworking/plugins, plugins/main/ipvlan) for
the same config: `master`, `mode` l2, l3 or l3s (default l2), `mtu`, `linkInContainer`,
`ipam`. Chained after another plugin (a `prevResult` and no `master`), the master is the
previous result's one named interface, and with no `ipam` the link takes the previous
result's IPs and routes. The result lists only the ipvlan link, every IP on it, and the
config's `dns`.

Departures from the reference, on purpose: a bad config is error 7 naming the key, not
999; with neither `ipam` nor addresses in `prevResult` the link is created with no
addresses (L2 only, as macvlan allows) instead of failing on an empty IPAM type; `mtu` is
checked against the master's up front; DEL reads only the generic keys (no master lookup,
so it works after the master is gone); CHECK looks the master up only when the config
names one. An ipvlan link shares its master's MAC, so no MAC can be requested.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Literal

import msgspec

from cni.config import NetConf, load_conf
from cni.errors import CniError, Code
from cni.result import Interface, Result
from cni.skel import CmdArgs, Plugin, run
from delegates import ipam
from delegates.macvlan import master as masters
from delegates.macvlan import sublink
from delegates.netlink import links


class IpvlanConf(NetConf, frozen=True, kw_only=True):
    """The ipvlan plugin's config: the generic keys plus its own."""

    master: str = ""  # empty: prevResult's single interface when chained, else the default route's link
    mode: Literal["l2", "l3", "l3s", ""] = "l2"  # the reference reads "" as l2
    mtu: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0: the kernel's default (the master's)
    link_in_container: bool = msgspec.field(default=False, name="linkInContainer")

    def __post_init__(self) -> None:
        masters.check_name(self.master)  # error 7 naming `master`
        if not self.mode:
            msgspec.structs.force_setattr(self, "mode", "l2")


def cmd_add(args: CmdArgs) -> Result:
    conf = load_conf(IpvlanConf, args.stdin)
    layer3 = sublink.has_ipam(conf)
    prev = conf.previous_result()
    lower = masters.resolve(master_name(conf, prev), pod_netns=args.netns, in_container=conf.link_in_container)
    masters.check_mtu(conf.mtu, lower)
    with contextlib.ExitStack() as undo:
        with sublink.creating("ipvlan", lower):
            link = links.create_ipvlan(
                master=lower.name,
                ifname=args.ifname,
                netns=args.netns,
                mode=conf.mode,
                mtu=conf.mtu or None,
                master_netns=lower.netns,
                link_in_container=conf.link_in_container,
            )
        undo.callback(sublink.quietly, links.delete_if_exists, args.netns, args.ifname)
        result = msgspec.structs.replace(
            sublink.new_result(conf), interfaces=[Interface(name=args.ifname, mac=link.mac, sandbox=args.netns)]
        )
        if layer3:
            allocated = ipam.add(conf, args)
            undo.callback(sublink.quietly, ipam.delete, conf, args)
            result = sublink.addressed(result, allocated, where=f'ipam "{ipam.ipam_type(conf)}"')
        elif prev is not None and prev.ips:
            result = sublink.addressed(result, prev, where="prevResult")
        # an L3 ipvlan answers no ARP (IFF_NOARP); in l2 mode it shares the master's MAC
        announce_from = link.mac if conf.mode == "l2" else None
        sublink.bring_up(args.netns, args.ifname, result, announce_from=announce_from)
        undo.pop_all()
    return result


def cmd_del(args: CmdArgs) -> None:
    sublink.cmd_del(args)


def cmd_check(args: CmdArgs) -> None:
    conf = load_conf(IpvlanConf, args.stdin)
    sublink.check(
        conf, args, kind="ipvlan", mode=conf.mode, master_name=conf.master, in_container=conf.link_in_container
    )


def cmd_status(args: CmdArgs) -> None:
    sublink.cmd_status(args, IpvlanConf)


def cmd_gc(args: CmdArgs) -> None:
    sublink.cmd_gc(args)


PLUGIN = Plugin(add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc, about="netplex ipvlan")


def main() -> int:
    return run(PLUGIN)


def master_name(conf: IpvlanConf, prev: Result | None) -> str:
    """The master the config names; when chained without one, the previous result's single
    named interface (the reference's rule); otherwise "" (the default route's link)."""
    if conf.master or prev is None:
        return conf.master
    if len(prev.interfaces) == 1 and prev.interfaces[0].name:
        return masters.check_name(prev.interfaces[0].name)
    raise CniError(
        Code.INVALID_NETWORK_CONFIG,
        "master: not set, and prevResult does not hold exactly one named interface to take it from",
    )
