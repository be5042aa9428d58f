"""What macvlan and ipvlan share once they know their master: creating the link with
errors that name the right key, addressing it from IPAM, bringing it up, checking it
against prevResult, and the verbs that do not depend on the link kind (DEL, STATUS, GC).

Both delegates follow the reference plugins' shape: the link is created straight in the
pod namespace, IPAM runs only when the config names a type, every address in the result
points at interface 0, and `dns` is the config's own. No Kubernetes here, and no pyroute2
(that is `delegates.netlink`).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from cni.config import NetConf, load_conf
from cni.errors import CniError, Code, MultiError
from cni.result import DNS, Result
from cni.skel import CmdArgs
from delegates import common, ipam
from delegates.ipam import iface
from delegates.macvlan import garp, master
from delegates.netlink import errors as nlerrors
from delegates.netlink import links, sysctl

log = logging.getLogger(__name__)

CHECK_FAILED = Code.INTERNAL  # the spec has no code for "the sandbox differs from prevResult"


def has_ipam(conf: NetConf) -> bool:
    """True when the config names an IPAM plugin. `ipam` absent or `{}` means a link with
    no addresses (L2 only); an `ipam` object with keys but no type is error 7."""
    if not conf.ipam:
        return False
    ipam.ipam_type(conf)  # error 7 naming ipam.type
    return True


def names_ipam(conf: NetConf) -> bool:
    """True when the config names an IPAM type; never an error (for DEL and GC)."""
    plugin_type = conf.ipam.get("type") if conf.ipam else None
    return isinstance(plugin_type, str) and bool(plugin_type)


@contextlib.contextmanager
def creating(kind: str, lower: master.Master) -> Iterator[None]:
    """Translate a failure to create a `kind` link on `lower` into a CNI error; one the
    master causes names `master`."""
    with common.netlink_errors(kind):
        try:
            yield
        except nlerrors.LinkNotFound as exc:  # the master went away since we looked it up
            raise CniError(Code.INVALID_NETWORK_CONFIG, f'master: link "{lower.name}" not found') from exc
        except nlerrors.NetlinkFailure as exc:
            if exc.errno != errno.EBUSY:
                raise
            # the master's rx_handler is taken: links of the other kind, or a bridge/bond port
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f'master: "{lower.name}" is busy: it already carries links of another kind '
                "(macvlan and ipvlan cannot share a master) or is a bridge or bond port",
            ) from exc


def quietly(fn: Callable[..., Any], *args: Any) -> None:
    """Run an undo step; a failure is logged, so it cannot hide the error that triggered it."""
    try:
        fn(*args)
    except Exception:
        log.exception("undo step %s failed", getattr(fn, "__qualname__", fn))


def addressed(result: Result, allocated: Result, *, where: str) -> Result:
    """`result` (its interfaces, at index 0 the new link) with the IPs and routes of
    `allocated`, every IP on interface 0. An allocation without IPs is an error."""
    if not allocated.ips:
        raise CniError(Code.INTERNAL, f"{where}: returned no IP configuration")
    return msgspec.structs.replace(ipam.on_interface(allocated, result.interfaces, index=0), dns=result.dns)


def bring_up(netns: str, ifname: str, result: Result, *, announce_from: str | None) -> None:
    """Addresses and routes of `result` on the link, and the link up; with no addresses,
    just up. Then, when `announce_from` gives the link's MAC, a gratuitous ARP per IPv4
    address (`delegates.macvlan.garp`).

    As in the reference plugins, `arp_notify` (and IPv6 `ndisc_notify`) are turned on
    first, so later link events re-announce the addresses; failing to set them is ignored
    (IPv6 may be disabled).
    """
    if not result.ips:
        with common.netlink_errors("ADD"):
            links.set_up(netns, ifname)
        return
    for key in (f"net/ipv4/conf/{ifname}/arp_notify", f"net/ipv6/conf/{ifname}/ndisc_notify"):
        try:
            sysctl.set_value(netns, key, "1")
        except nlerrors.NetlinkFailure as exc:
            log.debug("cannot set %s: %s", key, exc)
    iface.configure(netns, ifname, result, iface_index=0, nodad=False)
    if announce_from:
        v4 = [ip.address.ip for ip in result.ips if isinstance(ip.address, ipaddress.IPv4Interface)]
        garp.announce(netns, ifname, announce_from, v4)


def new_result(conf: NetConf) -> Result:
    """An empty result in the config's version, carrying the config's `dns`."""
    return Result(cni_version=conf.version, dns=conf.dns or DNS())


# --- the verbs both delegates answer the same way ---------------------------------------


def cmd_del(args: CmdArgs) -> None:
    """Release the addresses (even when the netns is gone), then delete the link. Every
    step is tried; a missing namespace, link or allocation is success."""
    conf = load_conf(NetConf, args.stdin)  # not the plugin's model: a bad mode must not block cleanup
    failures: list[CniError] = []
    if names_ipam(conf):
        try:
            ipam.delete(conf, args)
        except CniError as err:
            failures.append(err)
    if args.netns:
        try:
            with common.netlink_errors("DEL"):
                links.delete_if_exists(args.netns, args.ifname)
        except CniError as err:
            failures.append(err)
    if failures:
        raise failures[0] if len(failures) == 1 else MultiError(failures)


def cmd_status(args: CmdArgs, model: type[NetConf]) -> None:
    """Ready unless the config is invalid or its IPAM plugin says it is not."""
    conf = load_conf(model, args.stdin)
    if has_ipam(conf):
        ipam.status(conf, args)


def cmd_gc(args: CmdArgs) -> None:
    """Hand GC (with `cni.dev/valid-attachments`) to the IPAM plugin. Links live in pod
    namespaces and go with them, so there is nothing else to collect."""
    conf = load_conf(NetConf, args.stdin)
    if names_ipam(conf):
        ipam.gc(conf, args)


def checked_prev_result(conf: NetConf, args: CmdArgs) -> tuple[Result, int]:
    """CHECK's common start: IPAM CHECK, then prevResult and the index of the interface
    it records for this sandbox."""
    if has_ipam(conf):
        ipam.check(conf, args)
    prev = conf.previous_result()
    if prev is None:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "prevResult: required for CHECK")
    index = next(
        (i for i, found in enumerate(prev.interfaces) if found.name == args.ifname and found.sandbox == args.netns),
        None,
    )
    if index is None:
        raise CniError(CHECK_FAILED, f'prevResult: no interface "{args.ifname}" in sandbox "{args.netns}"')
    return prev, index


def check(
    conf: NetConf,
    args: CmdArgs,
    *,
    kind: str,
    mode: str,
    master_name: str,
    in_container: bool,
) -> None:
    """CHECK as the reference plugins do: IPAM CHECK, then the link named in prevResult
    must be in this sandbox with the right kind, mode and MAC, and carry prevResult's
    addresses and routes. An explicit `master` must still exist."""
    prev, index = checked_prev_result(conf, args)
    if master_name:
        master.resolve(master_name, pod_netns=args.netns, in_container=in_container)
    with common.netlink_errors("CHECK"):
        link = links.get(args.netns, args.ifname)
    if link is None:
        raise CniError(Code.UNKNOWN_CONTAINER, f'check: interface "{args.ifname}" is missing from the container')
    if link.kind != kind:
        raise CniError(CHECK_FAILED, f'check: interface "{args.ifname}" is a {link.kind or "device"}, not a {kind}')
    if link.mode != mode:
        raise CniError(
            CHECK_FAILED, f'check: interface "{args.ifname}" has {kind} mode "{link.mode}", the config says "{mode}"'
        )
    want_mac = prev.interfaces[index].mac
    if want_mac and want_mac.lower() != link.mac.lower():
        raise CniError(CHECK_FAILED, f'check: interface "{args.ifname}" has mac {link.mac}, prevResult says {want_mac}')
    iface.check(args.netns, args.ifname, prev, index)
