"""bridge: plug the pod into a Linux bridge on the node through a veth pair.

Behaves like the reference plugin (containernetworking/plugins `plugins/main/bridge`) for
the same config, minus its known pitfalls: the bridge's MAC is pinned when it is created,
so it never follows its lowest port and CHECK stays stable; a bad config is error 7 naming
the key; host forwarding is switched on only once ADD has succeeded. The host end of the
veth is named from the attachment (`common.host_veth_name`), so DEL and GC find it without
state; its alias names the network and attachment (`ownership`), so GC finds leaked ones
among the ports of a bridge other networks may share. A failed ADD undoes what it did,
except the bridge and its gateway addresses, which every pod of the network shares.
`ipMasq` and `macspoofchk` are nftables rules in netplex's own tables, tagged per
attachment (`delegates.masq`). `portIsolation` sets the port's isolated flag: isolated
ports of a bridge cannot reach each other, only its other ports and the bridge itself.

Runs as the `netplex-bridge` executable and in-process (`delegates.registry`), always in
the node's network namespace.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from cni import faultpoint
from cni.errors import CniError, Code, MultiError
from cni.result import DNS, Interface, Result
from cni.skel import CmdArgs, Plugin, run
from delegates import common, ipam, masq
from delegates.bridge import check, gateway, ownership, spoofchk
from delegates.bridge.config import BridgeConf, check_for_add, load
from delegates.ipam import iface
from delegates.netlink import errors as nlerrors
from delegates.netlink import links, sysctl

__all__ = ["PLUGIN", "cmd_add", "cmd_check", "cmd_del", "cmd_gc", "cmd_status", "main"]

log = logging.getLogger(__name__)

VALID_ATTACHMENTS_KEY = "cni.dev/valid-attachments"
_PORT_UP_WAITS = (0.0, 0.02, 0.1, 0.5, 1.0)  # seconds between looks at the host port


def cmd_add(args: CmdArgs) -> Result:
    conf = load(args.stdin)
    check_for_add(conf)
    mac = common.requested_mac(conf.runtime_config, conf.args, args)  # the reference's precedence
    host_name = common.host_veth_name(args.container_id, args.ifname)
    tag = masq.attachment_tag(conf.name, args.container_id, args.ifname)
    with contextlib.ExitStack() as undo:
        bridge = _ensure_bridge(conf)  # shared by every pod of the network: never undone
        host, container = _create_veth(conf, args, host_name=host_name, mac=mac)
        undo.callback(links.delete_if_exists, None, host_name)  # takes the container end with it
        _attach_port(conf, host_name)
        nft_undo = _once(undo, masq.teardown, tag)  # one teardown removes every rule of the tag
        if conf.macspoofchk:
            spoofchk.setup(tag, port=host_name, mac=container.mac)
            nft_undo()
        interfaces = [
            _interface(bridge),
            _interface(host),
            _interface(container, sandbox=args.netns),
        ]
        result = Result(cni_version=conf.cni_version, interfaces=interfaces, dns=conf.dns or DNS())
        families: set[int] = set()
        if conf.is_layer3:
            allocated = ipam.add(conf, args)
            undo.callback(ipam.delete, conf, args)
            faultpoint.reached("bridge.after-ipam")
            planned = gateway.plan(allocated, conf, interfaces)
            if not planned.result.ips:
                raise CniError(Code.INVALID_NETWORK_CONFIG, "ipam: the IPAM plugin returned no IP address")
            result = planned.result
            _container_sysctls(conf, args)
            with common.netlink_errors(f"interface {args.ifname!r}"):
                iface.configure(
                    args.netns, args.ifname, result, iface_index=gateway.CONTAINER_INDEX, nodad=not conf.enabledad
                )
            if planned.gateways:
                result = _ensure_gateways(conf, result, planned)
                families = planned.families()
            if conf.ip_masq:
                masq.setup_masquerade(tag, [ip.address for ip in result.ips])
                nft_undo()
        elif not conf.disable_container_interface:
            with common.netlink_errors(f"interface {args.ifname!r}"):
                links.set_up(args.netns, args.ifname)
        host = _wait_port_up(host_name, wait=not conf.disable_container_interface)
        result = _refreshed(result, bridge=conf.bridge, host=host)
        _enable_forwarding(families)  # last: host sysctls change only on success
        undo.pop_all()
    log.info("bridge %s: attached %s (%s) via %s", conf.bridge, args.container_id, args.ifname, host_name)
    return result


def cmd_del(args: CmdArgs) -> None:
    conf = load(args.stdin)
    host_name = common.host_veth_name(args.container_id, args.ifname)
    failures: list[CniError] = []

    def attempt(what: str, step: Callable[[], object]) -> None:
        try:
            with common.netlink_errors(what):
                step()
        except CniError as err:
            failures.append(err)

    # Deleting either end deletes the pair; a missing link or namespace is success.
    attempt(f"host veth {host_name!r}", lambda: links.delete_if_exists(None, host_name))
    if args.netns:
        attempt(f"interface {args.ifname!r}", lambda: links.delete_if_exists(args.netns, args.ifname))
    faultpoint.reached("bridge.del-after-links")
    if conf.is_layer3:
        attempt("ipam", lambda: ipam.delete(conf, args))  # even when the namespace is gone
    if conf.ip_masq or conf.macspoofchk:
        tag = masq.attachment_tag(conf.name, args.container_id, args.ifname)
        attempt("nftables", lambda: masq.teardown(tag))
    if failures:
        raise failures[0] if len(failures) == 1 else MultiError(failures)


def cmd_check(args: CmdArgs) -> None:
    conf = load(args.stdin)
    if conf.is_layer3:
        ipam.check(conf, args)
    previous = conf.previous_result()
    if previous is None:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "prevResult: required for CHECK")
    check.check_links(conf, previous, netns=args.netns, ifname=args.ifname)
    if previous.ips or previous.routes:
        with common.netlink_errors(f"interface {args.ifname!r}"):
            iface.check(args.netns, args.ifname, previous, gateway.CONTAINER_INDEX)


def cmd_status(args: CmdArgs) -> None:
    conf = load(args.stdin)
    if (conf.ip_masq or conf.macspoofchk) and not masq.available():
        key = "ipMasq" if conf.ip_masq else "macspoofchk"
        raise CniError(Code.NOT_AVAILABLE, f"{key}: the nft tool is not installed on this node")
    if conf.is_layer3:
        ipam.status(conf, args)


def cmd_gc(args: CmdArgs) -> None:
    """Release what attachments missing from `cni.dev/valid-attachments` left: host veths
    of this network on its bridge (a veth dies with its pod's namespace, but a namespace
    the runtime leaked keeps it alive), IPAM reservations and nftables rules. Every step is
    tried; the failures are returned together."""
    conf = load(args.stdin)
    valid = _valid_attachments(conf.given_valid_attachments())
    failures: list[CniError] = []
    try:
        with common.netlink_errors(f"gc of host veths on bridge {conf.bridge!r}"):
            deleted = ownership.collect(conf.bridge, conf.name, valid)
    except CniError as err:
        failures.append(err)
    else:
        if deleted:
            log.info("bridge %s: gc deleted leaked host veths %s of network %s", conf.bridge, deleted, conf.name)
    if conf.is_layer3:
        try:
            ipam.gc(conf, args)
        except CniError as err:
            failures.append(err)
    try:
        removed = masq.gc(conf.name, [masq.attachment_tag(conf.name, cid, ifname) for cid, ifname in valid])
    except CniError as err:
        failures.append(err)
    else:
        if removed:
            log.info("bridge %s: gc removed %d stale nftables rules of network %s", conf.bridge, removed, conf.name)
    if failures:
        raise failures[0] if len(failures) == 1 else MultiError(failures)


PLUGIN = Plugin(add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc, about="bridge")


def main() -> int:
    return run(PLUGIN)


# --- steps of ADD -------------------------------------------------------------------------


def _ensure_bridge(conf: BridgeConf) -> links.Link:
    try:
        with common.netlink_errors(f"bridge {conf.bridge!r}"):
            bridge = links.ensure_bridge(
                conf.bridge, mtu=conf.mtu or None, vlan_filtering=conf.vlan_filtering, promisc=conf.promisc_mode
            )
    except CniError as err:
        if isinstance(err.__cause__, nlerrors.WrongLinkKind):
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"bridge: {err.__cause__}") from err
        raise
    # We own the bridge's routes (the reference does the same); IPv6 may be off: ignore.
    with contextlib.suppress(nlerrors.NetlinkFailure):
        sysctl.set_value(None, f"net/ipv6/conf/{conf.bridge}/accept_ra", "0")
    return bridge


def _create_veth(conf: BridgeConf, args: CmdArgs, *, host_name: str, mac: str | None) -> tuple[links.Link, links.Link]:
    """The veth pair, its host end tagged with the attachment for GC (`ownership`)."""
    alias = ownership.alias_for(conf.name, args.container_id, args.ifname)
    with common.netlink_errors(f"veth for {args.ifname!r}"):
        return links.create_veth(
            host_name=host_name,
            peer_name=args.ifname,
            peer_netns=args.netns,
            mtu=conf.mtu or None,
            peer_mac=mac,
            host_alias=alias,
        )


def _attach_port(conf: BridgeConf, host_name: str) -> None:
    with common.netlink_errors(f"bridge port {host_name!r}"):
        links.set_master(None, host_name, conf.bridge)
        if conf.hairpin_mode:
            links.set_hairpin(None, host_name, True)
        if conf.port_isolation:
            links.set_port_isolated(None, host_name, True)
        gateway.set_port_vlans(
            host_name, vlan=conf.vlan, trunk=conf.trunk_vids, preserve_default_vlan=conf.preserve_default_vlan
        )


def _container_sysctls(conf: BridgeConf, args: CmdArgs) -> None:
    """Gratuitous ARP on; DAD on with `enabledad` (without it `iface.configure` turns DAD
    off, so ADD never waits for IPv6 addresses to leave the tentative state)."""
    settings = [(f"net/ipv4/conf/{args.ifname}/arp_notify", "1")]
    if conf.enabledad:
        settings += [
            (f"net/ipv6/conf/{args.ifname}/enhanced_dad", "1"),
            (f"net/ipv6/conf/{args.ifname}/accept_dad", "1"),
        ]
    for key, value in settings:
        with contextlib.suppress(nlerrors.NetlinkFailure, nlerrors.NetnsNotFound):
            sysctl.set_value(args.netns, key, value)


def _ensure_gateways(conf: BridgeConf, result: Result, planned: gateway.Plan) -> Result:
    if conf.vlan:
        vlan_link = gateway.ensure_vlan_interface(
            conf.bridge, conf.vlan, mtu=conf.mtu or None, preserve_default_vlan=conf.preserve_default_vlan
        )
        gateway.ensure_addresses(vlan_link.name, planned.gateways, force=conf.force_address)
        return msgspec.structs.replace(result, interfaces=[*result.interfaces, _interface(vlan_link)])
    gateway.ensure_addresses(conf.bridge, planned.gateways, force=conf.force_address)
    return result


def _wait_port_up(host_name: str, *, wait: bool) -> links.Link:
    """The host end once it has carrier (the bridge port forwards); the reference waits too."""
    link: links.Link | None = None
    for pause in _PORT_UP_WAITS if wait else (0.0,):
        time.sleep(pause)
        with common.netlink_errors(f"host veth {host_name!r}"):
            link = links.get(None, host_name)
        if link is None:
            raise CniError(Code.INTERNAL, f"host veth {host_name!r} disappeared during ADD")
        if not wait or (link.up and link.lower_up):
            return link
    raise CniError(Code.INTERNAL, f"bridge port {host_name!r} did not come up")


def _refreshed(result: Result, *, bridge: str, host: links.Link) -> Result:
    """The result with the MACs the kernel reports now."""
    with common.netlink_errors(f"bridge {bridge!r}"):
        bridge_link = links.get(None, bridge)
    interfaces = list(result.interfaces)
    if bridge_link is not None:
        interfaces[0] = _interface(bridge_link)
    interfaces[1] = _interface(host)
    return msgspec.structs.replace(result, interfaces=interfaces)


def _enable_forwarding(families: set[int]) -> None:
    keys = {4: "net/ipv4/ip_forward", 6: "net/ipv6/conf/all/forwarding"}
    for family in sorted(families):
        with common.netlink_errors("enable forwarding"):
            sysctl.set_value(None, keys[family], "1")


def _interface(link: links.Link, *, sandbox: str = "") -> Interface:
    return Interface(name=link.name, mac=link.mac, mtu=link.mtu or None, sandbox=sandbox)


def _once(undo: contextlib.ExitStack, fn: Callable[..., Any], *fn_args: Any) -> Callable[[], None]:
    """A function that registers `fn(*fn_args)` on `undo` the first time it is called."""
    registered = False

    def register() -> None:
        nonlocal registered
        if not registered:
            undo.callback(fn, *fn_args)
            registered = True

    return register


def _valid_attachments(raw: Any) -> set[tuple[str, str]]:
    if raw is None:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{VALID_ATTACHMENTS_KEY}: missing from the GC config")
    if not isinstance(raw, list):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{VALID_ATTACHMENTS_KEY}: must be a list of attachments")
    valid: set[tuple[str, str]] = set()
    for index, item in enumerate(raw):
        if not (
            isinstance(item, Mapping)
            and isinstance(item.get("containerID"), str)
            and isinstance(item.get("ifname"), str)
        ):
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"{VALID_ATTACHMENTS_KEY}.{index}: must be an object with string containerID and ifname",
            )
        valid.add((item["containerID"], item["ifname"]))
    return valid
