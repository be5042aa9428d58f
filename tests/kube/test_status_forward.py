"""STATUS forwarding through the real `netplex` executable (thin and daemon mode): the
cluster network's plugin answering STATUS with an error makes netplex answer that error
(code and message), as Multus forwards it; a ready one leaves netplex ready."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.kube.runners import Runner

pytestmark = pytest.mark.netns

PLUGIN = """#!/bin/sh
if [ "$CNI_COMMAND" = "STATUS" ] && [ -e {flag} ]; then
    echo '{{"cniVersion":"1.1.0","code":50,"msg":"cluster network not ready: no routes yet"}}'
    exit 1
fi
if [ "$CNI_COMMAND" = "VERSION" ]; then
    echo '{{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}}'
fi
exit 0
"""


@pytest.fixture
def conf(tmp_path: Path) -> dict[str, Any]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "clusternet").write_text(PLUGIN.format(flag=tmp_path / "down"))
    (bin_dir / "clusternet").chmod(0o755)
    (tmp_path / "networks").mkdir()
    return {"cniVersion": "1.1.0", "name": "netplex", "type": "netplex", "binDir": str(bin_dir),
            "cniDir": str(tmp_path / "cni"), "localNetworks": str(tmp_path / "networks"),
            "delegates": [{"cniVersion": "1.1.0", "name": "cluster", "type": "clusternet"}]}


def test_a_failing_cluster_network_status_is_netplex_status(runner: Runner, conf: dict[str, Any],
                                                            tmp_path: Path) -> None:
    answer = runner.status(conf)
    assert answer.rc == 0, (answer.doc, runner.last_stderr)
    (tmp_path / "down").touch()
    answer = runner.status(conf)
    assert answer.rc == 1 and answer.code == 50, (answer.doc, runner.last_stderr)
    assert "cluster network 'cluster'" in answer.msg and "no routes yet" in answer.msg
    (tmp_path / "down").unlink()
    assert runner.status(conf).rc == 0


def test_a_builtin_cluster_network_tells_through_its_ipam(runner: Runner, conf: dict[str, Any],
                                                          tmp_path: Path) -> None:
    builtin = {**conf, "delegates": [{"cniVersion": "1.1.0", "name": "cluster", "type": "macvlan", "master": "up0",
                                      "ipam": {"type": "clusternet"}}]}
    assert runner.status(builtin).rc == 0, runner.last_stderr
    (tmp_path / "down").touch()
    answer = runner.status(builtin)
    assert answer.rc == 1 and answer.code == 50, (answer.doc, runner.last_stderr)
    assert "no routes yet" in answer.msg
