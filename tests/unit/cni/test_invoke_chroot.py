"""cni/invoke.py's chroot for exec'd plugins (Multus's chrootDir): finding the binary
inside the root while naming it by its path there. Running one chrooted is in the netns
lane (tests/netns/test_daemonset_node.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cni import invoke
from cni.errors import CniError


@pytest.fixture(autouse=True)
def no_exec_root() -> Iterator[None]:
    yield
    invoke.set_exec_root("")


def node_with_plugin(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    plugin = root / "opt/cni/bin/flannel"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    return root


def test_a_plugin_is_found_inside_the_root_and_named_by_its_path_there(tmp_path: Path) -> None:
    root = node_with_plugin(tmp_path)
    assert invoke.find_plugin("flannel", ["/opt/cni/bin"], root=str(root)) == "/opt/cni/bin/flannel"
    with pytest.raises(CniError, match="failed to find plugin 'flannel'"):
        invoke.find_plugin("flannel", ["/opt/cni/bin"], root="")  # not on this machine


def test_the_exec_root_is_the_default_root_until_it_is_cleared(tmp_path: Path) -> None:
    root = node_with_plugin(tmp_path)
    invoke.set_exec_root(str(root) + "/")
    assert invoke.find_plugin("flannel", ["/opt/cni/bin"]) == "/opt/cni/bin/flannel"
    invoke.set_exec_root("/")  # the machine's own root: no chroot
    with pytest.raises(CniError):
        invoke.find_plugin("flannel", ["/opt/cni/bin"])
