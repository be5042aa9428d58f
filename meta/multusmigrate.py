"""DEL, CHECK and GC of sandboxes that Multus attached before the switch (meta.multuscache
reads its files): the fallback meta.plugin takes when netplex has no record of its own.

DEL adopts Multus's record into netplex's cache first (so a crash or a failed delegate
leaves netplex a record to retry from), removes Multus's record, then runs the ordinary
DEL: every delegate in reverse order, each with libcni's cached result as prevResult.
libcni's cached results go for every delegate whose DEL succeeded. CHECK reads the record
without changing anything. GC DELs every Multus record the runtime no longer lists and
counts the listed ones as valid for the networks' own GC.

Directories searched, in order: `multusCacheDir` (default /var/lib/cni/multus, Multus's
own `cniDir` default), then `cniDir` when it differs (an operator who kept Multus's
`"cniDir"` key when changing `"type": "multus"` to `"type": "netplex"`). Multus's files
and netplex's (`<cniDir>/cache/`) never share a name."""

from __future__ import annotations

import copy
import logging
import os

from cni import skel
from cni.errors import CniError, Code
from cni.invoke import Builtins
from meta import attach, cache, config, multuscache

log = logging.getLogger(__name__)


def directories(conf: config.MetaConf) -> list[str]:
    found = [conf.multus_cache_dir]
    if conf.cni_dir not in found:
        found.append(conf.cni_dir)
    return [directory for directory in found if directory]


def adopt(conf: config.MetaConf, args: skel.CmdArgs, *, cni_args: str) -> tuple[str, cache.CacheEntry] | None:
    """Multus's record of this sandbox as a netplex entry (not written), or None."""
    path = multuscache.record_path(directories(conf), args.container_id)
    if path is None:
        return None
    entry = multuscache.adopt(
        path, container_id=args.container_id, ifname=args.ifname,
        netns=args.netns, cni_version=conf.cni_version, result_dirs=_result_dirs(path),
        default_cni_args=cni_args,
    )
    return path, entry


def delete(
    conf: config.MetaConf, args: skel.CmdArgs, *, builtins: Builtins | None, cni_args: str, timeout: float
) -> bool:
    """DEL a Multus-attached sandbox; False when Multus has no record of it either."""
    adopted = adopt(conf, args, cni_args=cni_args)
    if adopted is None:
        return False
    path, entry = adopted
    if not args.netns and entry.netns and os.path.exists(entry.netns):
        args = args.replace(netns=entry.netns)  # GC has no netns: libcni recorded it
    cache.write(conf.cni_dir, entry)  # netplex owns the sandbox from here on
    original = copy.deepcopy(entry)
    multuscache.remove_record(path)
    kept: set[str] = set()
    try:
        attach.delete_all(entry, args, cni_dir=conf.cni_dir, builtins=builtins, timeout=timeout)
    except CniError:
        kept = {attachment.ifname for attachment in entry.attachments}
        raise
    finally:
        _remove_results(original, path, keep=kept)
    return True


def check(
    conf: config.MetaConf, args: skel.CmdArgs, *, builtins: Builtins | None, cni_args: str, timeout: float
) -> bool:
    adopted = adopt(conf, args, cni_args=cni_args)
    if adopted is None:
        return False
    attach.check_all(adopted[1], args, builtins=builtins, timeout=timeout)
    return True


def gc(
    conf: config.MetaConf,
    call: skel.CmdArgs,
    *,
    valid: set[tuple[str, str]],
    builtins: Builtins | None,
    timeout: float,
) -> tuple[list[cache.CacheEntry], list[CniError]]:
    """DEL every Multus record whose container the runtime no longer lists; returns the
    entries of those it still lists (valid for the networks' GC) and the DEL failures."""
    valid_ids = {container_id: ifname for container_id, ifname in valid}
    kept: list[cache.CacheEntry] = []
    errors: list[CniError] = []
    for directory in directories(conf):
        for container_id in multuscache.list_records(directory):
            ifname = valid_ids.get(container_id) or "eth0"
            args = call.replace(command="DEL", container_id=container_id, ifname=ifname, netns="")
            try:
                if container_id in valid_ids:
                    adopted = adopt(conf, args, cni_args="")
                    if adopted is not None:
                        kept.append(adopted[1])
                    continue
                delete(conf, args, builtins=builtins, cni_args="", timeout=timeout)
            except CniError as err:
                if err.code == Code.DECODING_FAILURE:  # not Multus's record: not ours to collect
                    log.warning("GC: %s/%s is not a Multus record, left alone: %s", directory, container_id, err.msg)
                    continue
                errors.append(err.prefixed(f"Multus-attached sandbox {container_id}"))
    return kept, errors


def _result_dirs(record: str) -> list[str]:
    directory = os.path.dirname(record)
    return [directory] if directory == multuscache.LIBCNI_DEFAULT_CACHE_DIR else [
        directory, multuscache.LIBCNI_DEFAULT_CACHE_DIR]


def _remove_results(entry: cache.CacheEntry, record: str, *, keep: set[str]) -> None:
    for directory in _result_dirs(record):
        for attachment in entry.attachments:
            if attachment.ifname in keep:
                continue
            name = str(attachment.conflist.get("name", ""))
            try:
                os.unlink(multuscache.result_path(directory, name, entry.container_id, attachment.ifname))
            except (OSError, CniError):
                continue  # already gone, or a name libcni could not have written
