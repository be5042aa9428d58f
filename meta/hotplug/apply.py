"""One hot-plug reconcile of one sandbox, run by the reconciler while it holds the
sandbox's lock (the same one the CNI verbs take), so it never interleaves with the
runtime's ADD or DEL of that sandbox.

1. Read the sandbox's cache entry. None: the runtime deleted it (nothing re-attaches).
   An attachment not yet `added`: the sandbox is still being created; leave it.
2. The netns is gone: DEL every attachment from the cache with no netns (frees IPAM and
   host-side state) and drop the entry; never ADD into a missing namespace.
3. Resolve the pod's current annotation exactly as ADD does (meta.resolve), and diff its
   selections against the cached ones (meta.hotplug.diff). The cluster network and
   defaultNetworks are not hot-plugged.
4. DEL the removed attachments in reverse order, then ADD the new ones in annotation
   order. Each step is written to the cache atomically: a new attachment as `pending`
   before its delegate runs and `added` with its result after, as ADD records them, so
   CHECK, DEL, GC and `netplex status` treat it like any other. A failed ADD is rolled back
   (that network's DEL) and leaves the rest of the pod untouched.
5. When anything changed, write network-status with ONE patch listing exactly the
   attachments the cache now holds, and record an event per interface added or removed
   and a warning per failure.

Hot-plugged attachments keep their own routes: NPWG default-route selection is applied
at sandbox creation only."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence

import msgspec

from cni import chain, skel
from cni.config import Conflist
from cni.errors import CniError
from cni.invoke import Builtins
from cni.result import Result
from meta import attach, cache, config, plugin, resolve, status
from meta.hotplug import diff, events
from meta.hotplug.records import SandboxRecord
from meta.model import Attachment
from meta.source import Pod, Source, SourceError

log = logging.getLogger(__name__)

Count = Callable[[str, str], None]  # (action: add/remove, outcome: ok/failed)


@dataclasses.dataclass
class Outcome:
    """What one reconcile did. `gone`: the sandbox no longer exists (drop its record);
    `retry`: something failed and should be tried again later; `changed`: attachments were
    added or removed; `published`: network-status was written."""

    gone: bool = False
    retry: bool = False
    changed: bool = False
    published: bool = False
    added: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)


def reconcile(
    record: SandboxRecord,
    pod: Pod,
    *,
    cni_dir: str,
    source: Source,
    sink: events.EventSink,
    count: Count,
    publish: bool = False,
) -> Outcome:
    """Bring the sandbox of `record` to what `pod`'s annotation asks for (module docstring).
    `publish`: write network-status even when nothing changes (a retry of a failed patch)."""
    outcome = Outcome()
    entry = cache.read(cni_dir, record.container_id, record.ifname)
    if entry is None:
        outcome.gone = True
        return outcome
    if any(attachment.state != "added" for attachment in entry.attachments):
        log.info("hot-plug %s: the sandbox %s is not fully added; leaving it", entry.pod, entry.container_id)
        return outcome
    conf = config.load_meta_conf(record.config)
    call = skel.CmdArgs(
        command="ADD", container_id=entry.container_id, netns=entry.netns, ifname=entry.ifname,
        args=record.cni_args, path=(conf.bin_dir, *(p for p in record.cni_path if p != conf.bin_dir)),
    )
    builtins = _builtins(conf)
    if not entry.netns or not os.path.exists(entry.netns):
        _clean(entry, call, cni_dir=cni_dir, builtins=builtins, timeout=conf.delegate_timeout)
        outcome.gone = True
        return outcome
    note = _Reporter(pod, sink, count, outcome)
    try:
        plan = resolve.resolve(
            conf, pod, source, runtime_config=conf.runtime_config, ifname=entry.ifname,
            pod_annotations_override=pod.annotations,
        )
    except CniError as err:
        note.failed("resolve", f"cannot resolve the pod's networks: {err.msg}")
        return outcome
    fixed = [a for a in plan if a.is_cluster_network or a.selection is None]
    if [a.network for a in entry.attachments[: len(fixed)]] != [a.network for a in fixed]:
        log.warning(
            "hot-plug %s: the cluster network or defaultNetworks differ from the sandbox's; only the selection"
            " annotation is hot-plugged, leaving it", entry.pod,
        )
        return outcome
    wanted = plan[len(fixed):]
    have = entry.attachments[len(fixed):]
    change = diff.diff(
        [diff.Have(a.network, a.ifname, a.capability_args) for a in have],
        [diff.Want(a.network, a.selection.interface if a.selection else "", a.capability_args) for a in wanted],
        reserved=_reserved(entry, fixed_count=len(fixed)),
    )
    for index in change.remove:
        _remove(entry, have[index], call, cni_dir=cni_dir, builtins=builtins, conf=conf, note=note)
    identity = plugin.PodIdentity.from_args(call)
    for index, ifname in change.add:
        attachment = msgspec.structs.replace(wanted[index], ifname=ifname)
        _add(entry, attachment, call, identity, cni_dir=cni_dir, builtins=builtins, conf=conf, note=note)
    for index, why in change.refused:
        note.failed("add", f"network {wanted[index].network!r}: {why}")
    if outcome.changed or publish:
        _publish(entry, pod, source, outcome)
    return outcome


class _Reporter:
    """Events, metrics and the outcome, kept in step."""

    def __init__(self, pod: Pod, sink: events.EventSink, count: Count, outcome: Outcome) -> None:
        self._pod, self._sink, self._count, self.outcome = pod, sink, count, outcome

    def _event(self, reason: str, message: str, *, warning: bool = False) -> None:
        try:
            self._sink.record(
                self._pod.namespace, self._pod.name, self._pod.uid, reason=reason, message=message, warning=warning
            )
        except Exception:  # an event is a report: never let it break the reconcile
            log.exception("hot-plug %s/%s: cannot record event %s", self._pod.namespace, self._pod.name, reason)

    def added(self, ifname: str, network: str) -> None:
        self.outcome.changed = True
        self.outcome.added.append(ifname)
        self._count("add", "ok")
        self._event(events.ADDED_INTERFACE, f"added interface {ifname} to network {network}")

    def removed(self, ifname: str, network: str) -> None:
        self.outcome.changed = True
        self.outcome.removed.append(ifname)
        self._count("remove", "ok")
        self._event(events.REMOVED_INTERFACE, f"removed interface {ifname} of network {network}")

    def failed(self, action: str, message: str) -> None:
        self.outcome.retry = True
        self.outcome.errors.append(message)
        self._count(action, "failed")
        log.warning("hot-plug %s/%s: %s", self._pod.namespace, self._pod.name, message)
        self._event(events.HOTPLUG_FAILED, message, warning=True)


def _reserved(entry: cache.CacheEntry, *, fixed_count: int) -> set[str]:
    """Names a new attachment may not take: the cluster network's and defaultNetworks',
    and links in the sandbox that netplex did not make."""
    from delegates.netlink import links

    ours = {a.ifname for a in entry.attachments}
    present = {link.name for link in links.list_links(entry.netns)} - {"lo"}
    return {a.ifname for a in entry.attachments[:fixed_count]} | (present - ours)


def _remove(
    entry: cache.CacheEntry, attachment: cache.CachedAttachment, call: skel.CmdArgs, *,
    cni_dir: str, builtins: Builtins | None, conf: config.MetaConf, note: _Reporter,
) -> None:
    try:
        _delete_one(attachment, call, builtins=builtins, timeout=conf.delegate_timeout)
    except CniError as err:
        note.failed("remove", f"cannot remove interface {attachment.ifname} of network {attachment.network}: {err.msg}")
        return
    entry.attachments = [a for a in entry.attachments if a is not attachment]
    cache.write(cni_dir, entry)
    note.removed(attachment.ifname, attachment.network)


def _add(
    entry: cache.CacheEntry, planned: Attachment, call: skel.CmdArgs, identity: plugin.PodIdentity, *,
    cni_dir: str, builtins: Builtins | None, conf: config.MetaConf, note: _Reporter,
) -> None:
    attachment = cache.CachedAttachment(
        network=planned.network, ifname=planned.ifname,
        conflist=planned.conflist.to_doc(),
        capability_args=dict(planned.capability_args), cni_args=identity.delegate_cni_args(),
        default_route=[str(gateway) for gateway in planned.default_route or ()],
    )
    entry.attachments.append(attachment)
    cache.write(cni_dir, entry)  # the intent, before the delegate runs (as ADD)
    network = Conflist.from_doc(attachment.conflist, where="conflist")
    try:
        result = chain.add(
            network, attach.delegate_args(call, attachment), capability_args=attachment.capability_args,
            builtins=attach.builtins_for(attachment, builtins, call.path), timeout=conf.delegate_timeout,
        )
    except Exception as exc:  # not only CniError: whatever failed, this network is rolled back
        reason = exc.msg if isinstance(exc, CniError) else f"{type(exc).__name__}: {exc}"
        try:
            _delete_one(attachment, call, builtins=builtins, timeout=conf.delegate_timeout)
        except CniError as err:  # the cache keeps it, for the runtime's DEL
            log.error("hot-plug %s: rollback of %s left it behind: %s", entry.pod, attachment.ifname, err.msg)
        else:
            entry.attachments.remove(attachment)
            cache.write(cni_dir, entry)
        note.failed("add", f"cannot add interface {attachment.ifname} of network {attachment.network}: {reason}")
        return
    attachment.state = "added"
    attachment.result = result.to_wire(network.version)
    cache.write(cni_dir, entry)
    note.added(attachment.ifname, attachment.network)


def _delete_one(
    attachment: cache.CachedAttachment, call: skel.CmdArgs, *, builtins: Builtins | None, timeout: float
) -> None:
    chain.delete(
        Conflist.from_doc(attachment.conflist, where="conflist"),
        attach.delegate_args(call, attachment).replace(command="DEL"),
        prev_result=attachment.result, capability_args=attachment.capability_args,
        builtins=attach.builtins_for(attachment, builtins, call.path), timeout=timeout,
    )


def _publish(entry: cache.CacheEntry, pod: Pod, source: Source, outcome: Outcome) -> None:
    entries: Sequence[status.Entry] = [
        (a, Result.from_wire(a.result) if a.result is not None else None) for a in entry.attachments
    ]
    try:
        source.set_network_status(pod, status.network_status(entries))
    except SourceError as err:
        outcome.retry = True
        outcome.errors.append(f"cannot write network-status: {err}")
        log.warning("hot-plug %s: cannot write network-status: %s", entry.pod, err)
        return
    outcome.published = True


def _clean(
    entry: cache.CacheEntry, call: skel.CmdArgs, *, cni_dir: str, builtins: Builtins | None, timeout: float
) -> None:
    """The sandbox's netns is gone: release what the cache records, as a DEL would."""
    log.info("hot-plug %s: netns %r of sandbox %s is gone; cleaning its cache entry", entry.pod, entry.netns,
             entry.container_id)
    try:
        attach.delete_all(entry, call.replace(command="DEL", netns=""), cni_dir=cni_dir, builtins=builtins,
                          timeout=timeout)
    except CniError as err:
        log.error("hot-plug %s: cleaning the gone sandbox %s left state behind: %s", entry.pod, entry.container_id,
                  err.msg)


def _builtins(conf: config.MetaConf) -> Builtins | None:
    if not conf.builtin_delegates:
        return None
    from delegates import registry

    return registry.lookup
