"""Running the delegates of a pod's attachments: ADD in order with rollback, DEL in
reverse trying every one, CHECK of each. State goes to the cache after every step.

A conflist runs as a chain (cni.chain); built-in types run in-process when allowed."""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from cni import chain, faultpoint, invoke, skel, version
from cni.config import Conflist
from cni.errors import CniError, Code, MultiError
from cni.invoke import Builtins
from cni.result import Result
from delegates.netlink import scope
from meta import cache, groupdel

log = logging.getLogger(__name__)


def add_all(
    entry: cache.CacheEntry,
    args: skel.CmdArgs,
    *,
    cni_dir: str,
    builtins: Builtins | None,
    deadline: float,
    delegate_timeout: float,
) -> list[Result]:
    """ADD every attachment in order; on any failure DEL those already made (and the one
    that failed, which may have left part of itself), in reverse, then raise."""
    with scope.invocation(entry.interface_group):
        return _add_each(entry, args, cni_dir=cni_dir, builtins=builtins, deadline=deadline,
                         delegate_timeout=delegate_timeout)


def _add_each(
    entry: cache.CacheEntry,
    args: skel.CmdArgs,
    *,
    cni_dir: str,
    builtins: Builtins | None,
    deadline: float,
    delegate_timeout: float,
) -> list[Result]:
    results: list[Result] = []
    for index, attachment in enumerate(entry.attachments):
        ran = False  # a failure before the delegate ran leaves nothing to undo: never added
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CniError(Code.TRY_AGAIN_LATER, "the ADD deadline (addTimeout) passed before this network")
            network = Conflist.from_doc(attachment.conflist, where="conflist")
            faultpoint.reached("attach.before-delegate")
            ran = True
            # Ambient too: a built-in runs under it in a worker thread, and the IPAM it
            # execs gets only what is left (cni.invoke).
            with invoke.deadline_scope(time.monotonic() + min(delegate_timeout, remaining)):
                result = chain.add(
                    network,
                    delegate_args(args, attachment),
                    capability_args=attachment.capability_args,
                    builtins=builtins_for(attachment, builtins, args.path),
                    timeout=min(delegate_timeout, remaining),
                )
            attachment.state = "added"
            attachment.result = result.to_wire(network.version)
            cache.write(cni_dir, entry)
            faultpoint.reached("attach.after-delegate")
        except Exception as exc:  # not only CniError: whatever fails, nothing stays attached
            if ran and attachment.state == "pending":
                attachment.state = "failed"  # its ADD answered: a failing DEL must not block later ones
            upto = index if ran else index - 1
            _rollback(entry, args, upto=upto, cni_dir=cni_dir, builtins=builtins, timeout=delegate_timeout)
            if isinstance(exc, CniError):
                raise exc.prefixed(f"{entry.pod}:{attachment.network} ({attachment.ifname})") from exc
            raise
        results.append(result)
    return results


def delete_all(
    entry: cache.CacheEntry,
    args: skel.CmdArgs,
    *,
    cni_dir: str,
    builtins: Builtins | None,
    timeout: float,
) -> None:
    """DEL every attachment in reverse, trying each even after a failure. Attachments
    whose DEL succeeded leave the cache; the cache file goes when all have."""
    with invoke.own_deadline(), scope.invocation():  # never bounded by an ADD that ran out of time
        groupdel.delete_links(entry, args.netns)  # one RTM_DELLINK; the delegates' DELs stay the net
        _delete_each(entry, args, cni_dir=cni_dir, builtins=builtins, timeout=timeout)


def _delete_each(
    entry: cache.CacheEntry,
    args: skel.CmdArgs,
    *,
    cni_dir: str,
    builtins: Builtins | None,
    timeout: float,
) -> None:
    errors: list[CniError] = []
    remaining: list[cache.CachedAttachment] = []
    for attachment in reversed(entry.attachments):
        try:
            faultpoint.reached("attach.before-delete")
            _delete_one(attachment, args, builtins=builtins, timeout=timeout)
        except CniError as err:
            if attachment.state == "failed":
                # Its ADD failed and answered with an error (the delegate undid what it could):
                # it was never added, so its DEL must not block the sandbox's removal.
                log.warning("DEL of %s:%s: dropped, its ADD had failed: %s", entry.pod, attachment.network, err.msg)
                continue
            if attachment.state == "pending" and _refuses_config(err):
                # Never added, and its delegates refuse the config itself (bad JSON or keys,
                # no such plugin): no DEL can ever succeed, and keeping it would fail every
                # later DEL of the sandbox, so the runtime could never remove it.
                log.warning("DEL of %s:%s: dropped, its config is refused: %s", entry.pod, attachment.network, err.msg)
                continue
            log.error("DEL of %s:%s failed: %s", entry.pod, attachment.network, err.msg)
            errors.append(err.prefixed(f"{entry.pod}:{attachment.network} ({attachment.ifname})"))
            remaining.insert(0, attachment)
    if remaining:
        entry.attachments = remaining
        cache.write(cni_dir, entry)
        raise errors[0] if len(errors) == 1 else MultiError(errors)
    cache.remove(cni_dir, entry.container_id, entry.ifname)


def check_all(entry: cache.CacheEntry, args: skel.CmdArgs, *, builtins: Builtins | None, timeout: float) -> None:
    """CHECK every attachment (not only the cluster network) against its cached result."""
    for attachment in entry.attachments:
        if attachment.state != "added" or attachment.result is None:
            raise CniError(Code.INVALID_ENVIRONMENT, f"{entry.pod}:{attachment.network} was never added")
        try:
            chain.check(
                Conflist.from_doc(attachment.conflist, where="conflist"),
                delegate_args(args, attachment),
                prev_result=attachment.result,
                capability_args=attachment.capability_args,
                builtins=builtins_for(attachment, builtins, args.path),
                timeout=timeout,
            )
        except CniError as err:
            raise err.prefixed(f"{entry.pod}:{attachment.network} ({attachment.ifname})") from err


def gc_delegates(
    entries: list[cache.CacheEntry],
    args: skel.CmdArgs,
    *,
    builtins: Builtins | None,
    timeout: float,
    stale: list[cache.CacheEntry] | None = None,
) -> list[CniError]:
    """GC on each delegate network netplex has recorded: its valid attachments are those
    of the sandboxes in `entries` (each with its own delegate ifname). Networks that only
    `stale` sandboxes (no longer valid) used are collected too, with none valid there."""
    networks: dict[str, dict[str, Any]] = {}
    valid: dict[str, list[dict[str, str]]] = {}
    for entry in [*entries, *(stale or [])]:
        for attachment in entry.attachments:
            name = str(attachment.conflist.get("name", ""))
            networks.setdefault(name, attachment.conflist)
            valid.setdefault(name, [])
    for entry in entries:
        for attachment in entry.attachments:
            name = str(attachment.conflist.get("name", ""))
            valid[name].append({"containerID": entry.container_id, "ifname": attachment.ifname})
    errors: list[CniError] = []
    for name, conflist in networks.items():
        try:
            network = Conflist.from_doc(conflist, where="conflist")
        except CniError as err:  # a cache written by another version: never block GC on it
            log.warning("GC of network %r skipped: its recorded config is not valid: %s", name, err.msg)
            continue
        if not version.at_least(network.version, "1.1.0"):
            continue  # GC exists from CNI 1.1 on; older delegates would refuse it
        try:
            chain.each(
                network, args.replace(command="GC"), extra={"cni.dev/valid-attachments": valid[name]},
                builtins=builtins, timeout=timeout,
            )
        except CniError as err:
            errors.append(err.prefixed(f"GC of network {name!r}"))
    return errors


def builtins_for(
    attachment: cache.CachedAttachment, builtins: Builtins | None, path: tuple[str, ...]
) -> Builtins | None:
    """The built-ins an attachment may use: all of them, except that a node's own cluster
    network runs the binary the node installed under that type, when there is one."""
    if builtins is None or not attachment.prefer_binaries:
        return builtins
    return preferring_binaries(builtins, path)


def preferring_binaries(builtins: Builtins, path: tuple[str, ...]) -> Builtins:
    """`builtins`, except that a type the node installed a binary for in `path` runs it."""

    def lookup(plugin_type: str) -> skel.Plugin | None:
        try:
            invoke.find_plugin(plugin_type, path)
        except CniError:
            return builtins(plugin_type)
        return None

    return lookup


def delegate_args(args: skel.CmdArgs, attachment: cache.CachedAttachment) -> skel.CmdArgs:
    """The delegate's invocation: its own ifname and CNI_ARGS, the runtime's netns."""
    return args.replace(ifname=attachment.ifname, args=attachment.cni_args)


def _delete_one(
    attachment: cache.CachedAttachment, args: skel.CmdArgs, *, builtins: Builtins | None, timeout: float
) -> None:
    chain.delete(
        Conflist.from_doc(attachment.conflist, where="conflist"),
        delegate_args(args, attachment),
        prev_result=attachment.result,
        capability_args=attachment.capability_args,
        builtins=builtins_for(attachment, builtins, args.path),
        timeout=timeout,
    )


def _refuses_config(err: CniError) -> bool:
    """True when every failure in `err` is a delegate refusing its config (error 6 or 7)."""
    failures = err.errors if isinstance(err, MultiError) else [err]
    return all(failure.code in (Code.DECODING_FAILURE, Code.INVALID_NETWORK_CONFIG) for failure in failures)


def _rollback(
    entry: cache.CacheEntry,
    args: skel.CmdArgs,
    *,
    upto: int,
    cni_dir: str,
    builtins: Builtins | None,
    timeout: float,
) -> None:
    undone = copy.deepcopy(entry)
    undone.attachments = undone.attachments[: upto + 1]
    try:
        delete_all(undone, args.replace(command="DEL"), cni_dir=cni_dir, builtins=builtins, timeout=timeout)
    except CniError as err:  # the cache keeps what is left, for the runtime's DEL
        log.error("rollback of %s left attachments behind: %s", entry.pod, err.msg)
    else:
        cache.remove(cni_dir, entry.container_id, entry.ifname)
