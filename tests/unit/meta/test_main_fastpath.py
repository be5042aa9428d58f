"""The `netplex` entry point answers a DEL with nothing recorded (containerd's second
DEL) from the standard library alone, and sends everything else the full way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

NETPLEX = Path(sys.executable).with_name("netplex")
HEAVY = ("pydantic", "pyroute2", "kubernetes")


def run(env: dict[str, str], conf: dict[str, object]) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(NETPLEX)],
        input=json.dumps(conf), env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
        timeout=60, check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def conf(cni_dir: Path) -> dict[str, object]:
    return {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "c", "cniDir": str(cni_dir)}


DEL = {
    "CNI_COMMAND": "DEL", "CNI_CONTAINERID": "ctr1", "CNI_IFNAME": "eth0", "CNI_NETNS": "", "CNI_PATH": "/opt/cni/bin",
}


def test_del_of_an_unrecorded_sandbox_imports_nothing_heavy(tmp_path: Path) -> None:
    rc, out, imports = run(DEL, conf(tmp_path))
    assert (rc, out) == (0, "")
    loaded = [line.rsplit("|", 1)[-1].strip() for line in imports.splitlines() if "|" in line]
    assert not [name for name in loaded if name.split(".")[0] in HEAVY]


def test_del_of_a_recorded_sandbox_goes_the_full_way(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ctr1-eth0.json").write_text(json.dumps({"containerID": "ctr1", "ifname": "eth0", "attachments": []}))
    rc, out, imports = run(DEL, conf(tmp_path))
    assert (rc, out) == (0, "")
    assert "msgspec" in imports  # the meta-plugin read the record
    loaded = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in imports.splitlines() if "|" in line}
    assert "pydantic" not in loaded  # the CNI path's models are msgspec Structs (~110 ms less per call)
    assert not (cache / "ctr1-eth0.json").exists()


def test_a_bad_del_still_gets_its_error(tmp_path: Path) -> None:
    rc, out, _ = run(DEL | {"CNI_CONTAINERID": "a/b"}, conf(tmp_path))
    assert rc == 1
    assert json.loads(out)["code"] == 4
    rc, out, _ = run(DEL, {"cniVersion": "9.9.9", "name": "netplex", "type": "netplex"})
    assert rc == 1
    assert json.loads(out)["code"] == 1
