"""meta/node/hostpath.py: node paths looked up under the host root as the node resolves
them, on a fake host tree in tmp_path."""

from __future__ import annotations

from pathlib import Path

from meta.node import hostpath


def host_tree(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    (root / "run/netns").mkdir(parents=True)
    (root / "run/netns/cni-1234").touch()
    (root / "var").mkdir()
    (root / "var/run").symlink_to("/run")  # absolute, as on Debian: must stay inside the root
    (root / "var/lib").mkdir()
    (root / "var/lib/up").symlink_to("../../run")  # relative
    (root / "loop").symlink_to("/loop")
    return root


def test_a_path_through_an_absolute_link_stays_inside_the_root(tmp_path: Path) -> None:
    root = host_tree(tmp_path)
    assert hostpath.inside(str(root), "/var/run/netns/cni-1234") == str(root / "run/netns/cni-1234")


def test_relative_links_and_dot_dot_resolve_inside_the_root(tmp_path: Path) -> None:
    root = host_tree(tmp_path)
    assert hostpath.inside(str(root), "/var/lib/up/netns/cni-1234") == str(root / "run/netns/cni-1234")
    assert hostpath.inside(str(root), "/../../run/./netns/cni-1234") == str(root / "run/netns/cni-1234")


def test_missing_paths_and_link_loops_are_none(tmp_path: Path) -> None:
    root = host_tree(tmp_path)
    assert hostpath.inside(str(root), "/run/netns/cni-gone") is None
    assert hostpath.inside(str(root), "/loop/x") is None


def test_a_path_that_exists_here_is_used_as_it_is(tmp_path: Path) -> None:
    root = host_tree(tmp_path)
    here = tmp_path / "here"
    here.touch()
    assert hostpath.container_path(str(here), str(root)) == str(here)
    assert hostpath.container_path("/var/run/netns/cni-1234", "") == "/var/run/netns/cni-1234"


def test_the_netns_of_a_request_is_translated_and_nothing_else(tmp_path: Path) -> None:
    root = host_tree(tmp_path)
    env = {"CNI_NETNS": "/var/run/netns/cni-1234", "CNI_PATH": "/opt/cni/bin"}
    translated = hostpath.with_netns(env, str(root))
    assert translated == {"CNI_NETNS": str(root / "run/netns/cni-1234"), "CNI_PATH": "/opt/cni/bin"}
    assert env["CNI_NETNS"] == "/var/run/netns/cni-1234"  # the request itself is left alone
    gone = hostpath.with_netns({"CNI_NETNS": "/run/netns/cni-gone"}, str(root))
    assert gone == {"CNI_NETNS": "/run/netns/cni-gone"}  # the plugin reports it missing, as before
    assert hostpath.with_netns({"CNI_NETNS": ""}, str(root)) == {"CNI_NETNS": ""}


def test_the_readiness_file_of_a_config_is_looked_up_under_the_root(tmp_path: Path) -> None:
    root = host_tree(tmp_path)
    (root / "run/flannel").mkdir()
    (root / "run/flannel/subnet.env").touch()
    config = {"type": "netplex", "readinessindicatorfile": "/var/run/flannel/subnet.env", "cniDir": "/var/lib/x"}
    assert hostpath.with_readiness_file(config, str(root)) == {
        **config, "readinessindicatorfile": str(root / "run/flannel/subnet.env"),
    }
    assert hostpath.with_readiness_file(config, "") == config
    spelled = {"readinessIndicatorFile": "/run/flannel/missing"}
    assert hostpath.with_readiness_file(spelled, str(root)) == spelled  # still missing: still not ready
