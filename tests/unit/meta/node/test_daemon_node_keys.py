"""The daemon config's node-view keys (meta/daemon_config.py): hostRoot and chrootDir are
the daemon's own, checked at start, and never reach the meta-plugin config (nor the
snapshot the shim's DEL fallback reads on the node)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meta import daemon_config
from meta.daemon_config import DaemonConfigError


def test_host_root_and_chroot_dir_are_the_daemons_own(tmp_path: Path) -> None:
    conf = daemon_config.parse(
        {"hostRoot": str(tmp_path), "chrootDir": str(tmp_path), "namespaceIsolation": True}, environ={}
    )
    assert (conf.host_root, conf.chroot_dir) == (str(tmp_path), str(tmp_path))
    assert dict(conf.meta) == {"namespaceIsolation": True}


def test_they_default_to_nothing() -> None:
    conf = daemon_config.parse({}, environ={})
    assert (conf.host_root, conf.chroot_dir) == ("", "")


@pytest.mark.parametrize(
    ("value", "message"),
    [("host", "hostRoot: want an absolute path"), (7, "hostRoot: want an absolute path"),
     ("/no/such/host", "hostRoot: '/no/such/host' is not a directory")],
)
def test_a_bad_host_root_stops_the_daemon(value: object, message: str) -> None:
    with pytest.raises(DaemonConfigError, match=message):
        daemon_config.parse({"hostRoot": value}, environ={})
