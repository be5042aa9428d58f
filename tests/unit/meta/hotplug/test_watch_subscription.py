"""meta.watchcache's subscription hook, which feeds hot-plug: every listed object, then
every watch event, in order, from the watch thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from meta.watchcache import WatchCache, WatchEvent


class Stream:
    """One batch of events, then open (blocking) until stopped, as a real watch."""

    def __init__(self, events: list[WatchEvent[str]]) -> None:
        self._events = events
        self._stopped = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent[str]]:
        yield from self._events
        self._stopped.wait(10)

    def stop(self) -> None:
        self._stopped.set()


def test_subscribers_get_each_listed_object_then_each_event_in_order() -> None:
    seen: list[tuple[str, str]] = []
    done = threading.Event()
    batches = [[WatchEvent("MODIFIED", "b", "3"), WatchEvent("DELETED", "a", "4"), WatchEvent("BOOKMARK", None, "5")]]

    def watcher(version: str, timeout: int) -> Stream:
        return Stream(batches.pop(0) if batches else [])

    def record(event_type: str, obj: str) -> None:
        seen.append((event_type, obj))
        if event_type == "DELETED":
            done.set()

    cache: WatchCache[str] = WatchCache(
        "things", lister=lambda: (["a", "b"], "2"), watcher=watcher, key=lambda obj: ("default", obj),
    )
    cache.subscribe(record)
    cache.start()
    try:
        assert done.wait(10)
    finally:
        cache.stop()
    assert seen == [("LISTED", "a"), ("LISTED", "b"), ("MODIFIED", "b"), ("DELETED", "a")]
    assert cache.get("default", "a") is None  # applied before the subscriber hears of it


def test_a_failing_subscriber_does_not_break_the_cache() -> None:
    def broken(event_type: str, obj: str) -> None:
        raise RuntimeError("subscriber bug")

    cache: WatchCache[str] = WatchCache(
        "things", lister=lambda: (["a"], "2"), watcher=lambda version, timeout: Stream([]),
        key=lambda obj: ("default", obj),
    )
    cache.subscribe(broken)
    cache.start()
    try:
        assert cache.wait_synced(10)
        assert cache.get("default", "a") == "a"
    finally:
        cache.stop()
