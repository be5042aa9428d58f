"""macvlan: give the pod an interface of its own, with its own MAC, on a host NIC's wire.

Behaves as the reference plugin (containernetworking/plugins, plugins/main/macvlan) for
the same config: `master` (default: the default route's link), `mode` bridge, private,
vepa or passthru (default bridge), `mtu` (0: the kernel's choice; never above the
master's), `mac`, `linkInContainer` (the master is in the pod namespace), optional `ipam`
(absent or `{}`: a link with no addresses). A MAC may also come from `runtimeConfig.mac`,
`args.cni.mac` or CNI_ARGS `MAC` (`delegates.common.requested_mac`).

Departures from the reference, on purpose: a bad config is error 7 naming the key, not
999; DEL reads only the generic keys, so a config that failed ADD can still be cleaned
up; unknown CNI_ARGS keys are ignored rather than refused; CHECK looks the master up only
when the config names one (the kernel removes a macvlan whose master goes away).
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Literal

import msgspec

from cni.config import NetConf, load_conf
from cni.result import Interface, Result
from cni.skel import CmdArgs, Plugin, run
from delegates import common, ipam
from delegates.macvlan import master as masters
from delegates.macvlan import sublink
from delegates.netlink import links


class MacvlanConf(NetConf, frozen=True, kw_only=True):
    """The macvlan plugin's config: the generic keys plus its own."""

    master: str = ""  # empty: the default route's link
    mode: Literal["bridge", "private", "vepa", "passthru", ""] = "bridge"  # the reference reads "" as bridge
    mtu: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0: the kernel's default (the master's)
    mac: str = ""
    link_in_container: bool = msgspec.field(default=False, name="linkInContainer")

    def __post_init__(self) -> None:
        masters.check_name(self.master)  # error 7 naming `master`
        if not self.mode:
            msgspec.structs.force_setattr(self, "mode", "bridge")
        if self.mac:
            msgspec.structs.force_setattr(self, "mac", common.parse_mac(self.mac, where="mac"))


def cmd_add(args: CmdArgs) -> Result:
    conf = load_conf(MacvlanConf, args.stdin)
    layer3 = sublink.has_ipam(conf)
    mac = common.requested_mac(conf.runtime_config, conf.args, args) or conf.mac or None
    lower = masters.resolve(conf.master, pod_netns=args.netns, in_container=conf.link_in_container)
    masters.check_mtu(conf.mtu, lower)
    with contextlib.ExitStack() as undo:
        with sublink.creating("macvlan", lower):
            link = links.create_macvlan(
                master=lower.name,
                ifname=args.ifname,
                netns=args.netns,
                mode=conf.mode,
                mtu=conf.mtu or None,
                mac=mac,
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
        sublink.bring_up(args.netns, args.ifname, result, announce_from=link.mac)
        undo.pop_all()
    return result


def cmd_del(args: CmdArgs) -> None:
    sublink.cmd_del(args)


def cmd_check(args: CmdArgs) -> None:
    conf = load_conf(MacvlanConf, args.stdin)
    sublink.check(
        conf, args, kind="macvlan", mode=conf.mode, master_name=conf.master, in_container=conf.link_in_container
    )


def cmd_status(args: CmdArgs) -> None:
    sublink.cmd_status(args, MacvlanConf)


def cmd_gc(args: CmdArgs) -> None:
    sublink.cmd_gc(args)


PLUGIN = Plugin(add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc, about="netplex macvlan")


def main() -> int:
    return run(PLUGIN)
