"""A config's `logFile`, opened only once that config is accepted.

A request refused for what it is (its version, environment, JSON or config: errors 1, 4,
6, 7) must not create the file its config names, since nothing in that config is to be
trusted. So the handler holds records in memory until `accept()` (a plugin's config
loaded: meta/config.py calls it) or the end of a call that was not refused, and then
writes them and everything after; a refused call drops them and never opens the file.
Standard library only (VERSION's path imports the skeleton)."""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["REFUSALS", "DeferredFileHandler", "accept", "settle"]

log = logging.getLogger(__name__)

REFUSALS = frozenset({1, 4, 6, 7})  # cni.errors.Code: version, environment, decoding, config


class DeferredFileHandler(logging.Handler):
    """Records wait in memory (up to MAX_PENDING) until the file may be created."""

    MAX_PENDING = 1000

    def __init__(self, path: str, opener: Callable[[], logging.Handler] | None = None) -> None:
        super().__init__()
        self.path = path
        # What opens the file once it may be created (a rotating handler for logOptions).
        self._opener = opener or (lambda: logging.FileHandler(path, encoding="utf-8", errors="backslashreplace"))
        self._pending: list[logging.LogRecord] = []
        self._file: logging.Handler | None = None
        self._dropped = False

    def emit(self, record: logging.LogRecord) -> None:
        if self._file is not None:
            self._file.handle(record)
        elif not self._dropped and len(self._pending) < self.MAX_PENDING:
            self._pending.append(record)

    def accept(self) -> None:
        if self._file is not None or self._dropped:
            return
        try:
            self._file = self._opener()
        except OSError as exc:
            self._dropped = True
            log.warning("cannot open logFile %r: %s", self.path, exc)
            return
        self._file.setFormatter(self.formatter)
        pending, self._pending = self._pending, []
        for record in pending:
            self._file.handle(record)

    def drop(self) -> None:
        """Forget the waiting records; the file is never created (once open, it stays)."""
        self._dropped = True
        self._pending = []

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()


def _handlers() -> list[DeferredFileHandler]:
    return [handler for handler in logging.getLogger().handlers if isinstance(handler, DeferredFileHandler)]


def accept() -> None:
    """The config was accepted: its logFile may be created now."""
    for handler in _handlers():
        handler.accept()


def settle(code: int | None) -> None:
    """The end of a call: a refusal (`code` in REFUSALS) drops, anything else accepts."""
    for handler in _handlers():
        if code is not None and code in REFUSALS:
            handler.drop()
        else:
            handler.accept()
