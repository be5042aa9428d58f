"""Deadlines on in-process built-ins (cni.invoke): a hung built-in gives error 11 within
its time, the step is counted as abandoned, and an ADD that finishes after the caller
gave up is DELed right away, so nothing outlives the rollback."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cni import invoke, skel
from cni.errors import CniError, Code

GENEROUS_MARGIN = 5.0  # seconds: only a bound, never an ordering, is asserted


class Sleeper:
    """A built-in whose ADD blocks until released (or 60 s); records every verb it ran."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str] = []
        self.deleted = threading.Event()

    def plugin(self) -> skel.Plugin:
        def add(args: skel.CmdArgs) -> dict[str, Any]:
            self.calls.append("ADD")
            self.release.wait(60)
            return {"cniVersion": "1.0.0"}

        def delete(args: skel.CmdArgs) -> None:
            self.calls.append("DEL")
            self.deleted.set()

        return skel.Plugin(add=add, delete=delete, about="sleeper")


def _args(command: str) -> skel.CmdArgs:
    return skel.CmdArgs(command=command, container_id="c1", netns="/run/netns/none", ifname="net1",
                        args="", path=("/nonexistent",), stdin=b"")


CONF = {"cniVersion": "1.0.0", "name": "slow", "type": "sleeper"}


def test_a_hung_builtin_gives_error_11_within_its_timeout_and_is_counted() -> None:
    sleeper = Sleeper()
    abandoned: list[tuple[str, str]] = []
    invoke.on_abandon.append(lambda kind, command: abandoned.append((kind, command)))
    before = invoke.abandoned_steps()
    started = time.monotonic()
    try:
        with pytest.raises(CniError) as caught:
            invoke.invoke(CONF, _args("ADD"), builtins=lambda _t: sleeper.plugin(), timeout=0.5)
        elapsed = time.monotonic() - started
    finally:
        invoke.on_abandon.clear()
        sleeper.release.set()
    assert caught.value.code == Code.TRY_AGAIN_LATER
    assert "did not finish within 0.5s" in caught.value.msg
    assert elapsed < 0.5 + GENEROUS_MARGIN
    assert invoke.abandoned_steps() == before + 1
    assert abandoned == [("sleeper", "ADD")]
    assert sleeper.deleted.wait(10), "the late ADD was not undone"
    assert sleeper.calls == ["ADD", "DEL"]


def test_the_ambient_deadline_bounds_a_builtin_called_without_a_timeout() -> None:
    sleeper = Sleeper()
    try:
        with invoke.deadline_scope(time.monotonic() + 0.3), pytest.raises(CniError) as caught:
            invoke.invoke(CONF, _args("ADD"), builtins=lambda _t: sleeper.plugin())
    finally:
        sleeper.release.set()
    assert caught.value.code == Code.TRY_AGAIN_LATER


def test_an_exec_under_a_passed_deadline_is_refused_with_error_11_without_running() -> None:
    with invoke.deadline_scope(time.monotonic() - 1), pytest.raises(CniError) as caught:
        invoke.exec_plugin("/bin/true", _args("ADD"))
    assert caught.value.code == Code.TRY_AGAIN_LATER


def test_a_builtin_that_finishes_in_time_answers_as_before() -> None:
    sleeper = Sleeper()
    sleeper.release.set()
    answer = invoke.invoke(CONF, _args("ADD"), builtins=lambda _t: sleeper.plugin(), timeout=10)
    assert answer == {"cniVersion": "1.0.0"}
    assert sleeper.calls == ["ADD"]


def test_a_builtin_error_keeps_its_code_through_the_worker_thread() -> None:
    def add(args: skel.CmdArgs) -> None:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "master: no such link")

    plugin = skel.Plugin(add=add, delete=lambda args: None, about="bad")
    with pytest.raises(CniError) as caught:
        invoke.invoke(CONF, _args("ADD"), builtins=lambda _t: plugin, timeout=5)
    assert caught.value.code == Code.INVALID_NETWORK_CONFIG
