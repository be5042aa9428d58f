"""The ADD deadline through the meta-plugin's own flow: a hung in-process delegate (a test
built-in registered for the call) makes the ADD fail with error 11 within addTimeout,
the attachment before it is rolled back, and netplex's cache is left empty."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cni import skel
from cni.errors import CniError, Code
from delegates import registry
from meta import config, plugin

GENEROUS_MARGIN = 5.0


def test_a_hung_in_process_delegate_gives_error_11_within_add_timeout_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    calls: list[tuple[str, str]] = []
    undone = threading.Event()

    def add(args: skel.CmdArgs) -> dict[str, Any]:
        calls.append(("ADD", args.ifname))
        if args.ifname == "net1":
            release.wait(60)
        return {"cniVersion": "1.0.0", "interfaces": [{"name": args.ifname}]}

    def delete(args: skel.CmdArgs) -> None:
        calls.append(("DEL", args.ifname))
        if args.ifname == "net1":
            undone.set()

    test_builtin = skel.Plugin(add=add, delete=delete, about="sleeper")
    monkeypatch.setattr(registry, "lookup", lambda kind: test_builtin if kind == "sleeper" else None)
    (tmp_path / "networks").mkdir()
    conf = config.load_meta_conf({
        "cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "addTimeout": 5.0, "delegateTimeout": 30.0,
        "cniDir": str(tmp_path / "cni"), "localNetworks": str(tmp_path / "networks"),
        "delegates": [{"name": "fast", "type": "sleeper"}, {"name": "slow", "type": "sleeper"}],
    })
    args = skel.CmdArgs(command="ADD", container_id="c1", netns=str(tmp_path / "no-such-netns"), ifname="eth0",
                        path=("/nonexistent",), stdin=b"")
    started = time.monotonic()
    try:
        with pytest.raises(CniError) as caught:
            plugin.add(conf, args, source_factory=lambda: plugin.open_source(conf))
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert caught.value.code == Code.TRY_AGAIN_LATER, caught.value.msg
    assert "net1" in caught.value.msg
    assert elapsed < conf.add_timeout + GENEROUS_MARGIN
    assert ("DEL", "eth0") in calls  # the rollback of the attachment made before it
    limit = time.monotonic() + 10  # the rollback DELs net1, and its late ADD is DELed again
    while calls.count(("DEL", "net1")) < 2 and time.monotonic() < limit:
        undone.wait(0.05)
    assert calls.count(("DEL", "net1")) == 2, calls
    cache_dir = tmp_path / "cni" / "cache"
    assert not cache_dir.exists() or os.listdir(cache_dir) == []
