"""Where hot-plug reports what it did to a pod: Kubernetes events, through `EventSink`.

The daemon hands in a sink; `LogSink` (no event recorder configured) writes each event to
the daemon's log instead. Reasons are the wire strings below. Must not import meta.daemon."""

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
