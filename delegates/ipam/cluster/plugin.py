"""netplex-ipam: cluster-wide IPAM on the Kubernetes API (the CNI verbs).

Runnable as `netplex-ipam` or in-process through the registry (type `netplex-ipam`).
ADD returns one address per configured range with its gateway, the configured routes and
DNS (never an interface index). DEL releases the attachment's addresses from the node's
records: it needs no API (only to learn whether an IPAMClaim is gone) and works when the
pod is gone. CHECK wants the attachment's records. GC (CNI 1.1) releases this node's
records of the network that `cni.dev/valid-attachments` does not list. STATUS is 50 when
the API server cannot be reached or the data dir is not writable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator

from cni import skel
from cni.config import NetConf, load_conf
from cni.errors import CniError, Code
from cni.result import Result
from delegates.ipam import host_local
from delegates.ipam.cluster import allocator, blocks, context, reconcile, records
from delegates.ipam.cluster import config as cluster_config
from delegates.ipam.cluster.kubeapi import ApiError, Unavailable

__all__ = ["PLUGIN", "cmd_add", "cmd_check", "cmd_del", "cmd_gc", "cmd_status", "main"]

log = logging.getLogger(__name__)


def cmd_add(args: skel.CmdArgs) -> Result:
    conf = cluster_config.load(args.stdin, args)
    node = context.node_for(conf)
    reconcile.note_data_dir(conf.data_dir)
    with _errors(conf):
        ips = allocator.allocate_all(conf, args, node)
    log.info(
        "netplex-ipam: %s gets %s on node %s", args.container_id, ", ".join(str(ip.address) for ip in ips), node.name
    )
    return Result(cni_version=conf.cni_version, ips=ips, routes=list(conf.routes), dns=conf.dns)


def cmd_del(args: skel.CmdArgs) -> None:
    conf = _light(args.stdin)
    api = context.client_for(conf, required=False)  # only to ask whether a claim is gone
    with _errors(conf):
        released = allocator.delete(conf, args.container_id, args.ifname, api)
    if released:
        log.info("netplex-ipam: released %s of %s (%s)", ", ".join(map(str, released)), args.container_id, args.ifname)


def cmd_check(args: skel.CmdArgs) -> None:
    conf = cluster_config.load(args.stdin, args)
    node = cluster_config.resolve_node(conf, context.daemon_node())
    held = [
        record for node_dir, pool in records.pools_of(conf.data_dir, node)
        for record in records.Records(conf.data_dir, node_dir, pool).all()
        if record.attached(args.container_id, args.ifname)
    ]
    if not held:
        raise CniError(
            Code.UNKNOWN_CONTAINER,
            f'netplex-ipam: no address recorded for container "{args.container_id}" ({args.ifname}) on node {node}',
        )
    previous = load_conf(NetConf, args.stdin, casefold=True).previous_result()
    mine = {record.ip for record in held}
    for ip in previous.ips if previous else []:
        ours = any(r.contains(ip.address.ip) for r in conf.ranges)
        if ours and ip.address.ip not in mine:
            raise CniError(Code.UNKNOWN_CONTAINER, f"netplex-ipam: {ip.address.ip} of prevResult is not recorded")


def cmd_status(args: skel.CmdArgs) -> None:
    conf = _light(args.stdin)
    if not os.access(conf.data_dir, os.W_OK) and os.path.exists(conf.data_dir):
        raise CniError(Code.NOT_AVAILABLE, f'netplex-ipam: data dir "{conf.data_dir}" is not writable')
    api = context.client_for(conf)
    assert api is not None
    try:
        api.list(blocks.POOLS, limit=1)
    except ApiError as exc:
        raise CniError(Code.NOT_AVAILABLE, f"netplex-ipam: {exc.message}") from exc


def cmd_gc(args: skel.CmdArgs) -> None:
    conf = _light(args.stdin)
    doc = load_conf(NetConf, args.stdin, casefold=True)
    valid = host_local._valid_attachments(doc.given_valid_attachments(host_local._MISSING))  # the same checks
    node = cluster_config.resolve_node(conf, context.daemon_node())
    with _errors(conf):
        released = allocator.gc(conf, node, valid, context.client_for(conf, required=False))
    if released:
        log.info("netplex-ipam: gc released %s", ", ".join(map(str, released)))


PLUGIN = skel.Plugin(add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc, about="netplex-ipam")


def main() -> int:
    return skel.run(PLUGIN)


def _light(stdin: bytes) -> cluster_config.ClusterConfig:
    conf = load_conf(NetConf, stdin, casefold=True)
    return dataclasses.replace(cluster_config.load_light(conf), claim=cluster_config.claim_of(conf))


@contextlib.contextmanager
def _errors(conf: cluster_config.ClusterConfig) -> Iterator[None]:
    try:
        yield
    except Unavailable as exc:
        raise CniError(Code.TRY_AGAIN_LATER, f"netplex-ipam: {exc.message}") from exc
    except ApiError as exc:
        if exc.status in (401, 403):
            raise CniError(Code.INVALID_ENVIRONMENT, f"netplex-ipam: {exc.message} (check netplex's RBAC)") from exc
        if exc.status == 409:
            raise CniError(Code.TRY_AGAIN_LATER, f"netplex-ipam: {exc.message}") from exc
        if exc.status == 404:  # an object went away meanwhile, or the CRDs are missing
            raise CniError(
                Code.TRY_AGAIN_LATER, f"netplex-ipam: {exc.message} (are netplex-ipam's CRDs installed?)"
            ) from exc
        raise CniError(Code.INTERNAL, f"netplex-ipam: {exc.message}") from exc
    except OSError as exc:
        raise CniError(
            Code.IO_FAILURE, f'netplex-ipam: data dir "{conf.data_dir}": {exc.strerror or exc}', str(exc)
        ) from exc
