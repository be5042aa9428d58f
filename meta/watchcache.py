"""A watch cache: one kind of object kept current in memory by list-then-watch.

The daemon keeps two: the pods of its node and every NetworkAttachmentDefinition. One
thread per cache lists the objects (a snapshot and its resourceVersion), then watches
from that version and applies each event; when a watch ends (the server's timeout) it
watches again from the last version seen; when the version is too old (`Expired`, HTTP
410) or the stream breaks, it lists again, after a backoff. That thread is the only
writer of the cache, so a list never races an event. `resync()` asks it for a fresh list
now and waits for it (a barrier: afterwards the cache is at least as new as the API
server was when resync was called).

Readers get `None` for an object the cache does not hold; deciding what a miss means
(one live GET) is the caller's business (meta/daemon_source.py). This module knows
nothing of Kubernetes' client: the list and watch functions are parameters, and the
events they yield are the `WatchEvent`s defined here (meta/k8s.py produces them).
`subscribe()` registers a callback the watch thread calls after applying each event
(with its type) and for every object of each list (type "LISTED"), e.g. hot-plug's.
Standard library only."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from meta.source import SourceError

log = logging.getLogger(__name__)

T = TypeVar("T")
Key = tuple[str, str]  # (namespace, name)
BACKOFF_FIRST = 0.2  # seconds before the first relist after a failure, doubling
BACKOFF_MAX = 10.0
DEFAULT_WATCH_TIMEOUT = 300  # seconds a single watch request stays open


class Expired(SourceError):
    """The watch's resourceVersion is too old (HTTP 410 Gone): list again."""


@dataclasses.dataclass(frozen=True)
class WatchEvent(Generic[T]):
    """One watch event: ADDED, MODIFIED, DELETED (the object), or BOOKMARK (no object,
    only a newer resourceVersion)."""

    type: str
    obj: T | None
    resource_version: str


class WatchStream(Protocol[T]):
    """An open watch: iterate for events; `stop()` from another thread ends it."""

    def __iter__(self) -> Iterator[WatchEvent[T]]: ...

    def stop(self) -> None: ...


Lister = Callable[[], tuple[list[T], str]]
Watcher = Callable[[str, int], WatchStream[T]]  # (resourceVersion, timeout seconds)


class WatchCache(Generic[T]):
    """Objects of one kind by (namespace, name), kept by a background list-and-watch."""

    def __init__(
        self,
        name: str,
        *,
        lister: Lister[T],
        watcher: Watcher[T],
        key: Callable[[T], Key],
        watch_timeout: int = DEFAULT_WATCH_TIMEOUT,
        sleep: Callable[[float], bool] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._on_change = on_change  # called (from the watch thread) after a list or an event
        self._lister = lister
        self._watcher = watcher
        self._key = key
        self._watch_timeout = watch_timeout
        self._objects: dict[Key, T] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._wake = threading.Event()  # stop or resync: end the current watch
        self._sleep = sleep or self._interruptible_sleep
        self._relist_wanted = False
        self._kick = threading.Event()  # wakes a backoff sleep: stop, or a resync
        self._lists_tried = 0
        self._list_ok = False
        self._relist_cond = threading.Condition(self._lock)
        self._stream: WatchStream[T] | None = None
        self._thread: threading.Thread | None = None
        self.version = ""
        self.last_error = ""
        self._subscribers: list[Callable[[str, T], None]] = []

    def subscribe(self, callback: Callable[[str, T], None]) -> None:
        """Call `callback(type, obj)` from the watch thread for each change (keep it quick)."""
        self._subscribers.append(callback)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the watch and the thread (waiting up to `timeout` seconds for it)."""
        with self._lock:
            self._stopping.set()
            self._kick.set()
            self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("watch cache %s: the watch thread did not stop within %.1fs", self.name, timeout)
            self._thread = None
        with self._relist_cond:
            self._relist_cond.notify_all()

    @property
    def synced(self) -> bool:
        """True once the first list has filled the cache."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def resync(self, timeout: float) -> bool:
        """List again now and wait (up to `timeout` seconds) until that list is in the
        cache. False when the list failed (the server is unreachable, say) or took longer."""
        with self._relist_cond:
            target = self._lists_tried + 1
            self._relist_wanted = True
            self._interrupt()
            self._kick.set()
            done = self._relist_cond.wait_for(
                lambda: self._lists_tried >= target or self._stopping.is_set(), timeout
            )
            return done and self._list_ok and not self._stopping.is_set()

    # -- reading ---------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> T | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def items(self) -> list[T]:
        with self._lock:
            return list(self._objects.values())

    # -- the watch thread ------------------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        must_list = True
        while not self._stopping.is_set():
            try:
                if must_list or self._take_relist():
                    self._list()
                    must_list = False
                self._watch()
                backoff = BACKOFF_FIRST
            except Expired as err:
                log.info("watch cache %s: %s; listing again", self.name, err)
                must_list = True
            except SourceError as err:
                self.last_error = str(err)
                log.warning("watch cache %s: %s; listing again in %.1fs", self.name, err, backoff)
                must_list = True
                self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception as exc:  # a bug must not kill the cache silently
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("watch cache %s failed; listing again in %.1fs", self.name, backoff)
                must_list = True
                self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _take_relist(self) -> bool:
        with self._lock:
            wanted, self._relist_wanted = self._relist_wanted, False
            return wanted

    def _list(self) -> None:
        with self._lock:
            self._relist_wanted = False  # this list serves every resync asked for so far
        try:
            objects, version = self._lister()
        except BaseException:
            with self._relist_cond:
                self._lists_tried += 1
                self._list_ok = False
                self._relist_cond.notify_all()
            raise
        with self._relist_cond:
            self._objects = {self._key(obj): obj for obj in objects}
            self.version = version
            self.last_error = ""
            self._lists_tried += 1
            self._list_ok = True
            self._relist_cond.notify_all()
        self._synced.set()
        for obj in objects:
            self._notify("LISTED", obj)
        if self._on_change is not None:
            self._on_change()
        log.debug("watch cache %s: listed %d at resourceVersion %s", self.name, len(objects), version)

    def _watch(self) -> None:
        with self._lock:
            if self._relist_wanted or self._stopping.is_set():
                return
            self._wake.clear()
            stream = self._watcher(self.version, self._watch_timeout)
            self._stream = stream
        try:
            self._apply_all(stream)
        finally:
            with self._lock:
                self._stream = None

    def _apply_all(self, events: Iterable[WatchEvent[T]]) -> None:
        for event in events:
            if self._wake.is_set():
                return
            with self._lock:
                if event.obj is not None:
                    key = self._key(event.obj)
                    if event.type == "DELETED":
                        self._objects.pop(key, None)
                    else:
                        self._objects[key] = event.obj
                if event.resource_version:
                    self.version = event.resource_version
            if event.obj is not None:
                self._notify(event.type, event.obj)

            if event.obj is not None and self._on_change is not None:
                self._on_change()

    def _notify(self, event_type: str, obj: T) -> None:
        for callback in self._subscribers:
            try:
                callback(event_type, obj)
            except Exception:  # a subscriber's bug must not break the cache
                log.exception("watch cache %s: a subscriber failed on %s", self.name, event_type)

    def _interrupt(self) -> None:
        """End the current watch (called with the lock held)."""
        self._wake.set()
        stream = self._stream
        if stream is not None:
            stream.stop()

    def _interruptible_sleep(self, seconds: float) -> bool:
        woken = self._kick.wait(seconds)
        self._kick.clear()
        return woken
