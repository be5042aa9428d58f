"""Pod events, as Multus posts them and operators watch for them (`kubectl describe pod`):
`AddedInterface` for every attachment, and a Warning when an ADD fails.

`EventRecorder.record` never blocks: it builds the core/v1 Event, passes it through a
rate limit and queues it; one background thread POSTs the queue through the sink (in
practice `meta.k8s.Kube.create_event`, reached lazily: the thread opens the API client). The rate limit is client-go's
EventSourceObjectSpamFilter: a token bucket per (source, involved object), burst 25,
refilled at 1 token per 300 s, the keys held in an LRU of 4096. A full queue (1000) or
an empty bucket drops the event; every outcome is counted (`counts`, and the optional
`count` hook: meta.metrics `events_total{reason,outcome}`).

Thin mode posts from the same process that must exit: `flush(budget)` waits at most
`budget` seconds (meta.plugin uses THIN_FLUSH_SECONDS) and whatever is not posted by
then is dropped, so an event never delays the runtime by more than that.

No Kubernetes import here: the sink is a callable."""

from __future__ import annotations

import collections
import datetime
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

ADDED_INTERFACE = "AddedInterface"
FAILED_ADD = "FailedAddInterface"
SPAM_BURST = 25  # client-go's defaultSpamBurst
SPAM_QPS = 1.0 / 300.0  # client-go's defaultSpamQPS: one token per 5 minutes
LRU_ENTRIES = 4096  # client-go's maxLruCacheEntries
QUEUE_SIZE = 1000
THIN_FLUSH_SECONDS = 0.05  # the most an exiting thin plugin waits for its events
COMPONENT = "netplex"

Sink = Callable[[str, dict[str, Any]], None]  # (namespace, event body)


class EventRecorder:
    """Asynchronous, rate-limited pod events; see the module docstring."""

    def __init__(
        self,
        sink: Callable[[], Sink | None],
        *,
        host: str = "",
        count: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`sink()` is called in the posting thread and gives the function that POSTs an
        event, or None when there is no API to post to (the event is dropped)."""
        self._sink = sink
        self._host = host
        self._count_hook = count
        self._clock = clock
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(QUEUE_SIZE)
        self._buckets: collections.OrderedDict[tuple[str, ...], tuple[float, float]] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def record(self, namespace: str, name: str, uid: str, *, reason: str, message: str, warning: bool = False) -> None:
        """Queue one event on pod `namespace/name` (never blocks, never raises)."""
        try:
            if not name:
                return
            if not self._allow((COMPONENT, self._host, "Pod", namespace, name, uid)):
                self._count(reason, "dropped")
                return
            body = self._event(namespace, name, uid, reason=reason, message=message, warning=warning)
            with self._lock:
                self._queue.put_nowait((namespace, body))
                self._pending += 1
                if self._thread is None:
                    self._thread = threading.Thread(target=self._post_loop, name="netplex-events", daemon=True)
                    self._thread.start()
        except queue.Full:
            self._count(reason, "dropped")
        except Exception:  # an event must never fail a CNI request
            log.exception("cannot queue event %s on %s/%s", reason, namespace, name)

    def flush(self, budget: float) -> bool:
        """Wait up to `budget` seconds for the queue to drain; True when it did."""
        deadline = self._clock() + budget
        with self._idle:
            while self._pending:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, budget: float = 1.0) -> None:
        """Post what is queued (up to `budget` seconds), then stop the thread."""
        self.flush(budget)
        with self._lock:
            thread = self._thread
        if thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                return
            thread.join(budget)

    def _allow(self, key: tuple[str, ...]) -> bool:
        """client-go's token bucket for `key`: burst 25, refill 1/300 s."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(SPAM_BURST), now))
            tokens = min(float(SPAM_BURST), tokens + (now - last) * SPAM_QPS)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > LRU_ENTRIES:
                self._buckets.popitem(last=False)
        return allowed

    def _event(
        self, namespace: str, name: str, uid: str, *, reason: str, message: str, warning: bool
    ) -> dict[str, Any]:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": name,
                               **({"uid": uid} if uid else {})},
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, **({"host": self._host} if self._host else {})},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._host,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

    def _post_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            namespace, body = item
            try:
                sink = self._sink()
                if sink is None:
                    self._count(str(body["reason"]), "dropped")
                else:
                    sink(namespace, body)
                    self._count(str(body["reason"]), "posted")
            except Exception as exc:  # the API refused or is down: counted, logged, dropped
                self._count(str(body["reason"]), "failed")
                log.warning("cannot post event %s on %s/%s: %s", body["reason"], namespace,
                            body["involvedObject"]["name"], exc)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _count(self, reason: str, outcome: str) -> None:
        self.counts[(reason, outcome)] += 1
        if self._count_hook is not None:
            try:
                self._count_hook(reason, outcome)
            except Exception:
                log.exception("event counter failed")


def added_interface_message(ifname: str, ips: list[str], network: str) -> str:
    """Multus's wording: `Add net1 [10.1.1.5/24] from default/macvlan`."""
    listed = "[" + " ".join(ips) + "]"
    return f"Add {ifname} {listed} from {network}" if network else f"Add {ifname} {listed}"
