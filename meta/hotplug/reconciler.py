"""The hot-plug reconciler: pod watch events in, one reconcile per changed pod out.

The pod watch cache calls `pod_changed` for every event and for every pod of each list
(so a restarted daemon catches up on edits made while it was down). A pod is queued
when its selection annotation differs from the one last seen (network-status patches,
including hot-plug's own, change nothing and queue nothing), and when the daemon
completes an ADD of a pod whose annotation was edited after the pod was first seen (that
ADD may have resolved the older one; a pod's first annotation is the one its ADD reads,
so the common ADD costs hot-plug nothing). One thread works the queue, earliest due first:

- the pod's current sandbox is the newest record (meta.hotplug.records) with the pod's
  UID whose cache entry exists; none: nothing to do (not ours, or still being created);
- it takes the sandbox's lock through `hold` (the daemon's, the one its CNI verbs take),
  then checks the sandbox was not deleted meanwhile (a tombstone, set by the runtime's
  DEL under the same lock: nothing re-attaches to a deleted sandbox);
- it runs meta.hotplug.apply.reconcile; on a failure the pod is queued again after a
  backoff (0.5 s doubling to 30 s; reset by success or by a new annotation), never hot.

Must not import meta.daemon: the daemon hands in its lock, pod cache, source and sinks."""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from cni import skel
from cni.errors import CniError
from meta import cache
from meta.hotplug import apply, events, records
from meta.model import NETWORKS_ANNOTATION
from meta.source import Pod, Source

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.5  # seconds before the first retry of a failed reconcile, doubling
BACKOFF_MAX = 30.0
LOCK_TIMEOUT = 30.0  # seconds to wait for a sandbox busy with a CNI request, then retry
TOMBSTONES = 4096  # deleted container IDs remembered (their records are gone anyway)

Key = tuple[str, str]
Hold = Callable[[str, str, float], contextlib.AbstractContextManager[None]]  # (container ID, cniDir, timeout)


class PodCache(Protocol):
    def get(self, namespace: str, name: str) -> Pod | None: ...


class Reconciler:
    """Queue and worker; `start()`, feed it `pod_changed`, `sandbox_added`,
    `sandbox_deleted`, then `stop()`."""

    def __init__(
        self,
        *,
        cni_dir: str,
        pods: PodCache,
        source: Source,
        hold: Hold,
        sink: events.EventSink | None = None,
        count: apply.Count | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cni_dirs = {cni_dir}
        self._pods = pods
        self._source = source
        self._hold = hold
        self._sink: events.EventSink = events.LogAndSink(sink) if sink is not None else events.LogSink()
        self._count = count or (lambda action, outcome: None)
        self._clock = clock
        self._cond = threading.Condition()
        self._due: dict[Key, float] = {}
        self._seen: dict[Key, str] = {}
        self._edited: set[Key] = set()  # edited since first seen, not yet applied to a sandbox
        self._failures: collections.Counter[Key] = collections.Counter()
        self._unpublished: set[Key] = set()
        self._tombstones: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Drop the records of sandboxes deleted while no daemon ran, and start working."""
        for cni_dir in list(self._cni_dirs):
            for record in records.list_records(cni_dir):
                if _entry(cni_dir, record) is None:
                    _forget(cni_dir, record)
        self._thread = threading.Thread(target=self._run, name="hotplug", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- inputs --------------------------------------------------------------------------

    def pod_changed(self, event_type: str, pod: Pod) -> None:
        """A pod watch event (or one pod of a list): queue the pod if its selection changed."""
        key = (pod.namespace, pod.name)
        with self._cond:
            if event_type == "DELETED":
                self._forget_pod(key)
                return
            selection = pod.annotations.get(NETWORKS_ANNOTATION, "")
            if self._seen.get(key) == selection:
                return
            if key in self._seen:
                self._edited.add(key)
            self._seen[key] = selection
            self._failures.pop(key, None)  # a new wish: no backoff owed
            self._queue(key, 0.0)

    def sandbox_added(self, cni_dir: str, args: skel.CmdArgs, config: dict[str, object]) -> None:
        """The daemon completed an ADD (it holds the sandbox's lock): remember how, and
        reconcile the pod in case its annotation changed while the ADD ran. Never raises:
        the ADD succeeded whatever happens here."""
        try:
            entry = cache.read(cni_dir, args.container_id, args.ifname)
            if entry is None or not entry.pod_name or not entry.pod_uid:
                return  # not a Kubernetes pod we can follow
            if cache.other_ifnames(cni_dir, args.container_id, args.ifname):
                return  # a second netplex network on the sandbox (podman): the first one follows the pod
            records.write(cni_dir, records.SandboxRecord(
                container_id=args.container_id, ifname=args.ifname, config=dict(config),
                cni_args=args.args, cni_path=list(args.path), added_at=time.time(),
            ))
        except (CniError, OSError) as err:
            log.error("hot-plug: cannot record sandbox %s: %s", args.container_id, err)
            return
        key = (entry.pod_namespace, entry.pod_name)
        with self._cond:
            self._cni_dirs.add(cni_dir)
            self._tombstones.pop(args.container_id, None)
            if key in self._edited:
                self._queue(key, 0.0)

    def sandbox_deleted(self, cni_dir: str, container_id: str, ifname: str) -> None:
        """The runtime is deleting the sandbox (called under its lock, before the DEL):
        nothing may attach to it from now on."""
        with self._cond:
            self._tombstones[container_id] = None
            while len(self._tombstones) > TOMBSTONES:
                self._tombstones.popitem(last=False)
        with contextlib.suppress(CniError, OSError):
            records.remove(cni_dir, container_id, ifname)

    # -- the worker ----------------------------------------------------------------------

    def _queue(self, key: Key, delay: float) -> None:
        """(with the condition held)"""
        due = self._clock() + delay
        self._due[key] = min(self._due.get(key, due), due)
        self._cond.notify_all()

    def _forget_pod(self, key: Key) -> None:
        self._due.pop(key, None)
        self._seen.pop(key, None)
        self._edited.discard(key)
        self._failures.pop(key, None)
        self._unpublished.discard(key)

    def _next(self) -> Key | None:
        with self._cond:
            while not self._stopping:
                if self._due:
                    key, due = min(self._due.items(), key=lambda item: item[1])
                    wait = due - self._clock()
                    if wait <= 0:
                        del self._due[key]
                        return key
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        while (key := self._next()) is not None:
            try:
                retry = self._reconcile(key)
            except Exception:  # a bug must not end hot-plug for every pod: back off and go on
                log.exception("hot-plug %s/%s: reconcile failed", *key)
                retry = True
            with self._cond:
                if not retry:
                    self._failures.pop(key, None)
                    continue
                self._failures[key] += 1
                delay = min(BACKOFF_FIRST * 2 ** (self._failures[key] - 1), BACKOFF_MAX)
                log.info("hot-plug %s/%s: retrying in %gs", key[0], key[1], delay)
                self._queue(key, delay)

    def _reconcile(self, key: Key) -> bool:
        """One pod; True when it should be tried again."""
        pod = self._pods.get(*key)
        if pod is None or not pod.uid:
            return False
        found = self._current_sandbox(pod)
        if found is None:
            log.debug("hot-plug %s/%s: no sandbox to attach to (none added yet, or the runtime deleted it)", *key)
            return False
        cni_dir, record = found
        with self._cond:
            self._edited.discard(key)  # from here on this sandbox follows the annotation
        log.debug("hot-plug %s/%s: waiting for sandbox %s", key[0], key[1], record.container_id)
        try:
            with self._hold(record.container_id, cni_dir, LOCK_TIMEOUT):
                with self._cond:
                    deleted = record.container_id in self._tombstones
                if deleted or _entry(cni_dir, record) is None:
                    log.info("hot-plug %s/%s: sandbox %s was deleted by the runtime; not attaching to it",
                             key[0], key[1], record.container_id)
                    _forget(cni_dir, record)
                    return False
                pod = self._pods.get(*key) or pod  # the newest annotation, now that we hold the sandbox
                with self._cond:
                    publish = key in self._unpublished
                outcome = apply.reconcile(
                    record, pod, cni_dir=cni_dir, source=self._source, sink=self._sink, count=self._count,
                    publish=publish,
                )
        except CniError as err:  # the sandbox stayed busy (error 11), or its cache is unreadable
            log.warning("hot-plug %s/%s: %s", key[0], key[1], err.msg)
            return True
        if outcome.gone:
            _forget(cni_dir, record)
            return False
        with self._cond:
            if outcome.published:
                self._unpublished.discard(key)
            elif outcome.changed:
                self._unpublished.add(key)
        if outcome.changed or outcome.errors:
            log.info(
                "hot-plug %s/%s (sandbox %s): added %s, removed %s%s", key[0], key[1], record.container_id,
                outcome.added or "none", outcome.removed or "none",
                f"; failed: {'; '.join(outcome.errors)}" if outcome.errors else "",
            )
        return outcome.retry

    def _current_sandbox(self, pod: Pod) -> tuple[str, records.SandboxRecord] | None:
        """The pod's newest sandbox with a cache entry (a pod has one at a time, but an old
        one may linger until the runtime DELs it)."""
        candidates: list[tuple[float, str, records.SandboxRecord]] = []
        with self._cond:
            cni_dirs = sorted(self._cni_dirs)
        for cni_dir in cni_dirs:
            for record in records.list_records(cni_dir):
                entry = _entry(cni_dir, record)
                if entry is not None and entry.pod_uid == pod.uid:
                    candidates.append((record.added_at, cni_dir, record))
        if not candidates:
            return None
        _, cni_dir, record = max(candidates, key=lambda item: item[0])
        return cni_dir, record


def _entry(cni_dir: str, record: records.SandboxRecord) -> cache.CacheEntry | None:
    try:
        return cache.read(cni_dir, record.container_id, record.ifname)
    except CniError:
        return None


def _forget(cni_dir: str, record: records.SandboxRecord) -> None:
    with contextlib.suppress(CniError, OSError):
        records.remove(cni_dir, record.container_id, record.ifname)
