"""Where hot-plug reports what it did to a pod: Kubernetes events, through `EventSink`.

The daemon hands in a sink (its meta.events.EventRecorder); every event is also written to
the daemon's log (`LogSink`), so a node's log tells what hot-plug did even where events
are rate-limited or expired. Reasons are the wire strings below. Must not import meta.daemon."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)

ADDED_INTERFACE = "AddedInterface"
REMOVED_INTERFACE = "RemovedInterface"
HOTPLUG_FAILED = "HotplugFailed"


class EventSink(Protocol):
    """Records one event on a pod (meta.events.EventRecorder fits)."""

    def record(
        self, namespace: str, name: str, uid: str, *, reason: str, message: str, warning: bool = False
    ) -> None: ...


class LogSink:
    """Events as log lines, for a daemon without an event recorder."""

    def record(
        self, namespace: str, name: str, uid: str, *, reason: str, message: str, warning: bool = False
    ) -> None:
        log.log(logging.WARNING if warning else logging.INFO, "event %s/%s %s: %s", namespace, name, reason, message)


class LogAndSink:
    """Each event to the daemon's log and to `sink` (the API's event recorder)."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self._log = LogSink()

    def record(
        self, namespace: str, name: str, uid: str, *, reason: str, message: str, warning: bool = False
    ) -> None:
        self._log.record(namespace, name, uid, reason=reason, message=message, warning=warning)
        self._sink.record(namespace, name, uid, reason=reason, message=message, warning=warning)
