"""The console scripts `netplex-host-local` and `netplex-static` answer exactly as the
in-process plugins do: the same sequence of commands against two fresh data dirs prints
the same JSON and exit codes. (These run real processes, but need no root or network.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from delegates.ipam import host_local, static
from tests.unit.delegates.conftest import Answer, environ, net, run_executable, run_in_process

Step = tuple[str, dict[str, Any], dict[str, Any]]


def host_local_steps(data_dir: str) -> list[Step]:
    ipam = {
        "type": "host-local",
        "dataDir": data_dir,
        "ranges": [[{"subnet": "10.4.0.0/30"}], [{"subnet": "fd04::/126"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    conf = net(ipam, version="1.1.0")
    return [
        ("VERSION", conf, {}),
        ("ADD", conf, {"container_id": "a"}),
        ("ADD", conf, {"container_id": "a"}),  # duplicate: 100
        ("ADD", conf, {"container_id": "b"}),  # exhausted: 11
        ("CHECK", conf, {"container_id": "a"}),
        ("CHECK", conf, {"container_id": "b"}),  # unknown: 3
        ("STATUS", conf, {}),
        ("DEL", conf, {"container_id": "a"}),
        ("DEL", conf, {"container_id": "a"}),
        ("ADD", net({**ipam, "ranges": [[{"subnet": "10.4.0.0/33"}]]}), {}),  # bad config: 7
        ("ADD", {"cniVersion": "1.0.0", "name": "x"}, {}),  # no ipam: 7
        ("ADD", conf, {"container_id": "c", "cni_args": "IP=10.4.0.9"}),  # not in range: 7
        ("ADD", conf, {"container_id": "c", "cni_args": "IP=10.4.0.2"}),
        ("GC", {**conf, "cni.dev/valid-attachments": []}, {}),
    ]


def static_steps() -> list[Step]:
    ipam = {
        "type": "static",
        "addresses": [{"address": "10.5.0.5/24", "gateway": "10.5.0.1"}],
        "dns": {"nameservers": ["10.5.0.53"]},
    }
    return [
        ("ADD", net(ipam, version="0.4.0"), {}),
        ("ADD", net(ipam), {"cni_args": "IP=10.6.0.6/24;GATEWAY=10.6.0.1"}),
        ("ADD", net({**ipam, "addresses": [{"address": "10.5.0.5"}]}), {}),
        ("DEL", net(ipam), {}),
    ]


def run_both(steps_for: Any, plugin: Any, executable: str, tmp_path: Path) -> tuple[list[Answer], list[Answer]]:
    mine, theirs = [], []
    for (command, conf, kwargs), (_, conf2, _) in zip(
        steps_for(str(tmp_path / "in-process")), steps_for(str(tmp_path / "exec")), strict=True
    ):
        mine.append(run_in_process(plugin, environ(command, **kwargs), conf))
        theirs.append(run_executable(executable, environ(command, **kwargs), conf2))
    return mine, theirs


def test_host_local_executable_matches_in_process(tmp_path: Path) -> None:
    mine, theirs = run_both(host_local_steps, host_local.PLUGIN, "netplex-host-local", tmp_path)
    assert [a.rc for a in mine] == [0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0]
    assert [a.code for a in mine if a.rc] == [100, 11, 3, 7, 7, 7]
    for step, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        assert a == b, f"step {step}: in-process {a} != executable {b}"
    stores = [sorted(p.name for p in (tmp_path / d / "testnet").iterdir()) for d in ("in-process", "exec")]
    assert stores[0] == stores[1] == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]


@pytest.mark.parametrize("step", range(len(static_steps())))
def test_static_executable_matches_in_process(step: int) -> None:
    command, conf, kwargs = static_steps()[step]
    mine = run_in_process(static.PLUGIN, environ(command, **kwargs), conf)
    theirs = run_executable("netplex-static", environ(command, **kwargs), conf)
    assert mine == theirs
