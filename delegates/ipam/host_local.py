"""host-local IPAM: addresses from configured ranges, reserved in files on this host.

A drop-in for the reference plugin (same config keys, same data-dir layout and lock, see
`hostlocal_store`), runnable as `netplex-host-local` or in-process through the registry.
ADD reserves one address per range set under the network's lock and returns them with
their gateways (never an interface index: IPAM does not know interfaces), the configured
routes, and DNS from `resolvConf`. DEL releases the attachment's addresses and needs only
`name` and `dataDir`. CHECK wants a reservation for the attachment (and, with a
prevResult, every address of it in our ranges). GC (CNI 1.1) releases every reservation not
in `cni.dev/valid-attachments`. STATUS is 50 when the data dir is not writable.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from cni import skel
from cni.config import NetConf, load_conf
from cni.errors import CniError, Code
from cni.result import DNS, Result
from delegates.ipam import hostlocal_allocator as allocator
from delegates.ipam import hostlocal_config as config
from delegates.ipam import hostlocal_ranges as ranges
from delegates.ipam.hostlocal_store import Store

__all__ = ["PLUGIN", "VALID_ATTACHMENTS_KEY", "cmd_add", "cmd_check", "cmd_del", "cmd_gc", "cmd_status", "main"]

log = logging.getLogger(__name__)

VALID_ATTACHMENTS_KEY = "cni.dev/valid-attachments"
_MISSING: Any = object()  # GC without the key: refuse rather than release everything


def cmd_add(args: skel.CmdArgs) -> Result:
    conf = config.load(args.stdin, args)
    dns = config.parse_resolv_conf(conf.resolv_conf) if conf.resolv_conf else DNS()
    store = Store(conf.data_dir, conf.network)
    with _store_errors(store), store.locked():
        ips = allocator.allocate_all(
            store, conf.range_sets, container_id=args.container_id, ifname=args.ifname, requests=conf.requests
        )
    log.info(
        "host-local: reserved %s for %s (%s)", ", ".join(str(ip.address) for ip in ips), args.container_id, args.ifname
    )
    return Result(cni_version=conf.cni_version, ips=ips, routes=list(conf.routes), dns=dns)


def cmd_del(args: skel.CmdArgs) -> None:
    store = _store_for(args.stdin)
    if not store.exists():
        return
    with _store_errors(store), store.locked():
        released = store.release(args.container_id, args.ifname)
        store.remove_stale_temporaries()  # under the lock no temp file is live: a crash's leftovers
    if released:
        log.info("host-local: released %s of %s (%s)", ", ".join(map(str, released)), args.container_id, args.ifname)


def cmd_check(args: skel.CmdArgs) -> None:
    conf = config.load(args.stdin, args)
    store = Store(conf.data_dir, conf.network)
    with _store_errors(store), store.locked():
        held = {r.ip for r in store.held_by(args.container_id, args.ifname)}
    if not held:
        raise CniError(
            Code.UNKNOWN_CONTAINER,
            f'host-local: no address reserved for container "{args.container_id}" ({args.ifname}) '
            f'in network "{conf.network}"',
        )
    previous = load_conf(NetConf, args.stdin, casefold=True).previous_result()
    for ip in previous.ips if previous else []:
        ours = any(ranges.range_for(range_set, ip.address.ip) for range_set in conf.range_sets)
        if ours and ip.address.ip not in held:
            raise CniError(
                Code.UNKNOWN_CONTAINER,
                f'host-local: {ip.address.ip} of prevResult is not reserved for container "{args.container_id}" '
                f"({args.ifname})",
            )


def cmd_status(args: skel.CmdArgs) -> None:
    conf = config.load(args.stdin, args)
    store = Store(conf.data_dir, conf.network)
    try:
        with store.locked():
            if not os.access(store.directory, os.W_OK):
                raise PermissionError(13, "not writable", store.directory)
    except OSError as exc:
        raise CniError(
            Code.NOT_AVAILABLE, f'host-local: data dir "{store.directory}" is not usable: {exc.strerror or exc}'
        ) from exc


def cmd_gc(args: skel.CmdArgs) -> None:
    conf = load_conf(NetConf, args.stdin, casefold=True)
    valid = _valid_attachments(conf.given_valid_attachments(_MISSING))
    store = _store_for(args.stdin, conf)
    if not store.exists():
        return
    with _store_errors(store), store.locked():
        store.remove_stale_temporaries()
        for reservation in store.reservations():
            if reservation.ifname is None:
                keep = any(container_id == reservation.container_id for container_id, _ in valid)
            else:
                keep = (reservation.container_id, reservation.ifname) in valid
            if not keep:
                store.release_ip(reservation.ip)
                log.info(
                    "host-local: gc released %s of %s (%s)",
                    reservation.ip,
                    reservation.container_id,
                    reservation.ifname,
                )


PLUGIN = skel.Plugin(add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc, about="host-local")


def main() -> int:
    return skel.run(PLUGIN)


def _store_for(stdin: bytes, conf: NetConf | None = None) -> Store:
    """The store named by a config whose ranges may be broken (DEL and GC need no more);
    `conf` when the caller has parsed `stdin` already."""
    conf = conf or load_conf(NetConf, stdin, casefold=True)
    ipam = config.load_ipam_section(conf)
    return Store(config.data_dir_of(ipam), conf.name)


def _valid_attachments(raw: Any) -> set[tuple[str, str]]:
    if raw is _MISSING:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{VALID_ATTACHMENTS_KEY}: missing from the GC config")
    if raw is None:
        return set()
    if not isinstance(raw, list):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{VALID_ATTACHMENTS_KEY}: must be a list of attachments")
    valid: set[tuple[str, str]] = set()
    for index, item in enumerate(raw):
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("containerID"), str)
            or not isinstance(item.get("ifname"), str)
        ):
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"{VALID_ATTACHMENTS_KEY}.{index}: must be an object with string containerID and ifname",
            )
        valid.add((item["containerID"].strip(), item["ifname"]))
    return valid


@contextlib.contextmanager
def _store_errors(store: Store) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise CniError(
            Code.IO_FAILURE, f'host-local: data dir "{store.directory}": {exc.strerror or exc}', str(exc)
        ) from exc
