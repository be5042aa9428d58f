"""meta/install.py and meta/launcher: `netplex install` on a fake node tree in tmp_path.

The node's / is `tmp_path/host` (the DaemonSet's /host); its python3.11 is a file with
this interpreter's ELF header and a stub standard library, which is all the installer
reads when the root is not /. The runtime copied is a one-module stand-in, and byte code
is not compiled, so nothing here runs a subprocess."""

from __future__ import annotations

import json
import logging
import os
import shlex
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import pytest

from meta import config, install
from meta.launcher import node as launcher_node
from meta.launcher import runtime, templates
from meta.launcher.node import HostRoot, InstallError

FLANNEL = {
    "name": "cbr0",
    "cniVersion": "0.3.1",
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "bandwidth", "capabilities": {"bandwidth": True, "unused": False}},
    ],
}
CALICO = {"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [{"type": "calico"}]}
ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
PY = f"python{sys.version_info.major}.{sys.version_info.minor}"


class Node:
    """A fake node: `root` is its /, the rest are the installer's view of its paths."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "host"
        self.bin = self.root / "opt/cni/bin"
        self.conf = self.root / "etc/cni/net.d"
        self.lib = self.root / "opt/netplex"
        self.account = tmp_path / "serviceaccount"
        self.source = tmp_path / "src"
        for directory in (self.bin, self.conf, self.account, self.source / "fakepkg"):
            directory.mkdir(parents=True)
        self.add_python(f"usr/bin/{PY}")
        self.write_token("token-1")
        (self.account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        (self.source / "fakepkg" / "__init__.py").write_text("VALUE = 1\n")

    def add_python(self, relative: str, *, header: bytes | None = None) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(header if header is not None else _own_elf_header())
        path.chmod(0o755)
        stdlib = self.root / Path(relative).parent.parent / "lib" / path.name / "os.py"
        stdlib.parent.mkdir(parents=True, exist_ok=True)
        stdlib.touch()

    def write_token(self, token: str) -> None:
        # Written beside and renamed, as kubelet swaps a projected token.
        tmp = self.account / ".token.new"
        tmp.write_text(token)
        tmp.replace(self.account / "token")

    def write_conf(self, name: str, doc: dict[str, Any]) -> Path:
        path = self.conf / name
        tmp = self.conf / f".{name}.new"
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)
        return path

    def options(self, **changes: Any) -> install.InstallOptions:
        base = install.InstallOptions(
            cni_bin_dir=str(self.bin),
            cni_conf_dir=str(self.conf),
            host_root=str(self.root),
            lib_dir=str(self.lib),
            service_account_dir=str(self.account),
            node_python="auto",  # the node's CPython: the bundled runtime is built in tests/netns
            once=True,
            interval=0.01,
            timeout=5,
        )
        return install.InstallOptions(**{**base.__dict__, **changes})

    def sources(self, version: str = "1") -> list[runtime.Source]:
        files = ((self.source / "fakepkg" / "__init__.py", PurePosixPath("fakepkg/__init__.py")),)
        return [runtime.Source("fakepkg", version, files)]

    def run(self, *, version: str = "1", **changes: Any) -> int:
        return install.run(
            self.options(**changes), sources=self.sources(version), compile_byte_code=False,
            environ=ENV, stop=threading.Event(),
        )

    @property
    def conflist(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.conf / install.CONFLIST_NAME).read_text())
        return doc

    @property
    def kubeconfig(self) -> Path:
        return self.conf / "netplex.d" / "netplex.kubeconfig"


def _own_elf_header() -> bytes:
    with open(os.path.realpath(sys.executable), "rb") as handle:
        return handle.read(64)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    made = Node(tmp_path)
    made.write_conf("10-flannel.conflist", FLANNEL)
    return made


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# --- a fresh install ---------------------------------------------------------------------


def test_fresh_install_writes_release_launchers_kubeconfig_and_conflist(node: Node) -> None:
    assert node.run() == 0

    releases = list((node.lib / "releases").iterdir())
    assert len(releases) == 1
    release = releases[0]
    assert (release / "lib" / "fakepkg" / "__init__.py").read_text() == "VALUE = 1\n"
    scripts = {name for name, _module, _attr in runtime.console_scripts()}
    assert {"netplex", "netplex-bridge", "netplex-macvlan", "netplex-host-local"} <= scripts
    assert {path.name for path in (release / "bin").iterdir()} == scripts
    for name in scripts:
        launcher = node.bin / name
        assert launcher.stat().st_mode & 0o777 == 0o755
        text = launcher.read_text()
        assert text.startswith("#!/bin/sh\n")
        assert f"python=/usr/bin/{PY}\n" in text  # node paths, not the installer's
        assert f"release=/opt/netplex/releases/{release.name}\n" in text
        assert f'exec "$python" -I -S "$release/bin/{name}" "$@"' in text


def test_fresh_install_conflist_inlines_the_primary_as_the_cluster_network(node: Node) -> None:
    assert node.run() == 0

    conflist = node.conflist
    assert conflist["cniVersion"] == "0.3.1"  # the primary's
    assert conflist["name"] == install.NETWORK_NAME
    [entry] = conflist["plugins"]
    assert entry["type"] == "netplex"
    assert entry["delegates"] == [FLANNEL]
    assert entry["capabilities"] == {
        "bandwidth": True,
        "io.kubernetes.cri.pod-annotations": True,
        "portMappings": True,
    }
    assert entry["kubeconfig"] == "/etc/cni/net.d/netplex.d/netplex.kubeconfig"
    assert entry["binDir"] == "/opt/cni/bin"
    conf = config.load_meta_conf({"cniVersion": conflist["cniVersion"], "name": conflist["name"], **entry})
    assert conf.delegate_networks()[0].name == "cbr0"
    assert (node.conf / install.CONFLIST_NAME).stat().st_mode & 0o777 == 0o644


def test_fresh_install_kubeconfig_holds_the_service_account(node: Node) -> None:
    import yaml

    assert node.run() == 0

    assert node.kubeconfig.stat().st_mode & 0o777 == 0o600
    doc = json.loads(node.kubeconfig.read_text())  # JSON, so thin mode never imports yaml
    assert yaml.safe_load(node.kubeconfig.read_text()) == doc  # and YAML for everyone else
    assert doc["clusters"][0]["cluster"]["server"] == "https://10.96.0.1:443"
    assert doc["clusters"][0]["cluster"]["certificate-authority-data"]
    assert doc["users"][0]["user"]["token"] == "token-1"
    assert doc["current-context"] == "netplex"


def test_ipv6_service_host_is_bracketed(node: Node) -> None:
    rendered = install.render_kubeconfig(
        str(node.account), {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    )
    assert json.loads(rendered)["clusters"][0]["cluster"]["server"] == "https://[fd00::1]:6443"


def test_outside_a_pod_there_is_no_kubeconfig(node: Node) -> None:
    options = node.options()
    assert install.sync(options, environ={}).done
    assert "kubeconfig" not in node.conflist["plugins"][0]
    assert not node.kubeconfig.exists()


# --- changes ------------------------------------------------------------------------------


def test_primary_config_change_regenerates_the_conflist(node: Node) -> None:
    stop = threading.Event()
    thread = threading.Thread(
        target=install.run,
        args=(node.options(once=False),),
        kwargs={"sources": node.sources(), "compile_byte_code": False, "environ": ENV, "stop": stop},
    )
    thread.start()
    try:
        wait_for((node.conf / install.CONFLIST_NAME).exists)
        changed = {**FLANNEL, "plugins": [*FLANNEL["plugins"][:1]]}
        node.write_conf("10-flannel.conflist", changed)
        wait_for(lambda: node.conflist["plugins"][0]["delegates"] == [changed])
        assert node.conflist["plugins"][0]["capabilities"] == {"io.kubernetes.cri.pod-annotations": True}
        node.write_conf("05-calico.conflist", CALICO)  # a new first config becomes the primary
        wait_for(lambda: node.conflist["plugins"][0]["delegates"] == [CALICO])
        assert node.conflist["cniVersion"] == "1.0.0"
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert (node.conf / install.CONFLIST_NAME).exists()  # never removed on shutdown


def test_token_rotation_refreshes_the_kubeconfig(node: Node) -> None:
    stop = threading.Event()
    thread = threading.Thread(
        target=install.run,
        args=(node.options(once=False),),
        kwargs={"sources": node.sources(), "compile_byte_code": False, "environ": ENV, "stop": stop},
    )
    thread.start()
    try:
        wait_for((node.conf / install.CONFLIST_NAME).exists)  # written after the kubeconfig
        assert "token-1" in node.kubeconfig.read_text()
        conflist_inode = (node.conf / install.CONFLIST_NAME).stat().st_ino
        node.write_token("token-2")
        wait_for(lambda: "token-2" in node.kubeconfig.read_text())
        assert "token-1" not in node.kubeconfig.read_text()
        assert (node.conf / install.CONFLIST_NAME).stat().st_ino == conflist_inode  # untouched
    finally:
        stop.set()
        thread.join(timeout=10)


def test_readiness_indicator_file_is_waited_for(node: Node) -> None:
    options = node.options(readiness_indicator_file="/run/flannel/subnet.env")
    result = install.sync(options, environ=ENV)
    assert result.waiting_for == "readiness indicator file /run/flannel/subnet.env"
    assert not (node.conf / install.CONFLIST_NAME).exists()
    assert not node.kubeconfig.exists()

    indicator = node.root / "run/flannel/subnet.env"
    indicator.parent.mkdir(parents=True)
    indicator.touch()
    assert install.sync(options, environ=ENV).done
    assert node.conflist["plugins"][0]["readinessindicatorfile"] == "/run/flannel/subnet.env"


def test_the_readiness_file_is_found_through_the_nodes_own_links(node: Node) -> None:
    (node.root / "var").mkdir()
    (node.root / "var/run").symlink_to("/run")  # absolute: the node's /run, not the installer's
    options = node.options(readiness_indicator_file="/var/run/flannel/subnet.env")
    assert not install.sync(options, environ=ENV).done
    indicator = node.root / "run/flannel/subnet.env"
    indicator.parent.mkdir(parents=True)
    indicator.touch()
    assert install.sync(options, environ=ENV).done


def test_once_gives_up_when_the_readiness_file_never_comes(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    assert node.run(readiness_indicator_file="/run/never", timeout=0.05) == 1
    assert "gave up after 0.05s waiting for readiness indicator file /run/never" in caplog.text
    assert not (node.conf / install.CONFLIST_NAME).exists()


def test_once_waits_for_a_primary_config(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    empty = Node(tmp_path)
    with caplog.at_level(logging.INFO):
        assert empty.run(timeout=0.05) == 1
    assert "waiting for a primary CNI config" in caplog.text


# --- idempotence and upgrades ----------------------------------------------------------------


def test_a_second_run_rewrites_nothing(node: Node) -> None:
    assert node.run() == 0
    watched = [node.bin / "netplex", node.conf / install.CONFLIST_NAME, node.kubeconfig]
    before = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in watched}
    release = next((node.lib / "releases").iterdir())
    release_inode = release.stat().st_ino

    assert node.run() == 0
    assert {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in watched} == before
    assert next((node.lib / "releases").iterdir()).stat().st_ino == release_inode
    assert install.sync(node.options(), environ=ENV).written == ()


def test_upgrade_keeps_the_previous_release_and_drops_older_ones(node: Node) -> None:
    ids = []
    for version in ("1", "2", "3"):
        assert node.run(version=version) == 0
        installed = runtime.installed_release(str(node.bin), HostRoot(str(node.root)))
        assert installed is not None
        ids.append(installed)
    assert len(set(ids)) == 3
    # A plugin started from release 2 may still run: it stays; release 1 is gone.
    assert sorted(path.name for path in (node.lib / "releases").iterdir()) == sorted(ids[1:])


def test_leftover_staging_directories_are_cleaned(node: Node) -> None:
    stale = node.lib / "releases" / f"{runtime.STAGING_PREFIX}0-dead"
    stale.mkdir(parents=True)
    assert node.run() == 0
    assert not stale.exists()


def test_launchers_are_replaced_not_rewritten_in_place(node: Node) -> None:
    assert node.run(version="1") == 0
    launcher = node.bin / "netplex"
    with open(launcher, "rb") as running:  # a plugin executing the old launcher
        old_text = running.read()
        inode = os.fstat(running.fileno()).st_ino
        assert node.run(version="2") == 0
        assert launcher.stat().st_ino != inode  # a new file took the name
        running.seek(0)
        assert running.read() == old_text  # the old one is intact for whoever runs it
    assert not [path for path in node.bin.iterdir() if path.name.startswith(".")]


# --- the primary config and the conflist ---------------------------------------------------


def test_primary_skips_our_own_and_meta_plugin_configs_and_broken_files(node: Node) -> None:
    node.write_conf("00-multus.conf", {"cniVersion": "0.3.1", "name": "multus", "type": "multus"})
    (node.conf / "01-broken.conf").write_text("{not json")
    node.write_conf("02-nokind.conf", {"cniVersion": "0.3.1", "name": "x"})
    node.write_conf(install.CONFLIST_NAME, {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "netplex"}]})
    primary = install.find_primary(str(node.conf))
    assert primary is not None
    assert os.path.basename(primary.path) == "10-flannel.conflist"


def test_primary_can_be_named(node: Node) -> None:
    node.write_conf("05-calico.conflist", CALICO)
    primary = install.find_primary(str(node.conf), "10-flannel.conflist")
    assert primary is not None and primary.doc == FLANNEL
    assert install.find_primary(str(node.conf), "missing.conf") is None


def test_a_single_conf_primary_gives_its_capabilities(node: Node) -> None:
    conf = {"cniVersion": "1.0.0", "name": "ptp", "type": "ptp", "capabilities": {"portMappings": True}}
    primary = install.Primary(path="/x/10-ptp.conf", doc=conf)
    text = install.render_conflist(primary, entry={})
    entry = json.loads(text)["plugins"][0]
    assert entry["capabilities"] == {"io.kubernetes.cri.pod-annotations": True, "portMappings": True}
    assert entry["delegates"] == [conf]


@pytest.mark.parametrize(
    ("primary", "requested", "expected"),
    [
        ({"cniVersion": "0.3.1"}, "", "0.3.1"),
        ({"cniVersion": "0.4.0"}, "", "0.4.0"),
        ({"cniVersion": "1.1.0"}, "", "1.1.0"),  # only because the primary uses it
        ({}, "", "1.0.0"),
        ({"cniVersions": ["0.4.0", "1.0.0", "1.1.0"]}, "", "1.0.0"),
        ({"cniVersions": ["1.1.0"]}, "", "1.1.0"),
        ({"cniVersion": "0.3.1"}, "1.0.0", "1.0.0"),
    ],
)
def test_conflist_version(primary: dict[str, Any], requested: str, expected: str) -> None:
    assert install.conflist_version(primary, requested) == expected


@pytest.mark.parametrize("version", ["0.2.0", "0.1.0", "2.0.0"])
def test_a_version_netplex_cannot_speak_is_refused(version: str) -> None:
    with pytest.raises(InstallError, match=f"cniVersion '{version}' cannot be used"):
        install.conflist_version({"cniVersion": version})


def test_config_file_keys_go_into_the_netplex_entry(node: Node, tmp_path: Path) -> None:
    extra = tmp_path / "netplex.json"
    extra.write_text(json.dumps({"namespaceIsolation": True, "globalNamespaces": ["default", "shared"]}))
    assert node.run(config_file=str(extra), daemon_socket="/run/netplex/netplex.sock") == 0
    entry = node.conflist["plugins"][0]
    assert entry["namespaceIsolation"] is True
    assert entry["globalNamespaces"] == ["default", "shared"]
    assert entry["daemonSocket"] == "/run/netplex/netplex.sock"
    assert entry["delegates"] == [FLANNEL]


def test_a_cluster_network_in_the_config_file_replaces_the_inline_delegate(node: Node, tmp_path: Path) -> None:
    extra = tmp_path / "netplex.json"
    extra.write_text(json.dumps({"clusterNetwork": "cbr0"}))
    assert node.run(config_file=str(extra)) == 0
    entry = node.conflist["plugins"][0]
    assert entry["clusterNetwork"] == "cbr0"
    assert "delegates" not in entry


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "multus"}, "type are set by netplex install"),
        ({"delegates": []}, "delegates are set by netplex install"),
        ({"logLevel": "loud"}, "the generated netplex config is invalid: logLevel"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_a_bad_config_file_writes_nothing(
    node: Node, tmp_path: Path, caplog: pytest.LogCaptureFixture, doc: Any, message: str
) -> None:
    extra = tmp_path / "netplex.json"
    extra.write_text(json.dumps(doc))
    assert node.run(config_file=str(extra)) == 1
    assert message in caplog.text
    assert not (node.conf / install.CONFLIST_NAME).exists()


def test_a_config_sorting_before_ours_is_warned_about(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    node.write_conf("00-aaa.conflist", CALICO)
    with caplog.at_level(logging.WARNING):
        assert node.run() == 0
    assert "00-aaa.conflist sorts before 00-netplex.conflist: the runtime uses it" in caplog.text


def test_missing_host_directories_are_an_error(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    assert node.run(cni_bin_dir=str(node.root / "nowhere")) == 1
    assert "does not exist (is the host path mounted?)" in caplog.text


# --- the node's Python --------------------------------------------------------------------


def test_node_python_is_found_through_a_symlink(tmp_path: Path) -> None:
    made = Node(tmp_path)
    (made.root / "usr/bin/python3").symlink_to(PY)
    assert launcher_node.find_node_python(HostRoot(str(made.root)), "/usr/bin/python3") == "/usr/bin/python3"
    assert launcher_node.find_node_python(HostRoot(str(made.root))) == f"/usr/bin/{PY}"


def test_a_node_without_the_right_python_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    made = Node(tmp_path)
    (made.root / f"usr/bin/{PY}").unlink()
    made.add_python("usr/bin/python3.12")
    (made.root / "usr/bin/python3").symlink_to("python3.12")
    with pytest.raises(InstallError) as info:
        launcher_node.find_node_python(HostRoot(str(made.root)))
    message = str(info.value)
    assert f"the node has no CPython {launcher_node.python_version()} that netplex can use" in message
    assert f"/usr/bin/{PY}: not found" in message
    assert "/usr/bin/python3: it is Python 3.12" in message
    assert "pydantic-core" in message
    assert "--node-python" in message


def test_a_python_for_another_machine_is_refused(tmp_path: Path) -> None:
    made = Node(tmp_path)
    header = bytearray(_own_elf_header())
    order: Literal["little", "big"] = "little" if header[5] == 1 else "big"
    ours = int.from_bytes(header[18:20], order)
    other = 0xB7 if ours != 0xB7 else 0x3E  # EM_AARCH64, else EM_X86_64
    header[18:20] = other.to_bytes(2, order)
    made.add_python(f"usr/bin/{PY}", header=bytes(header))
    with pytest.raises(InstallError, match="built for another machine type"):
        launcher_node.find_node_python(HostRoot(str(made.root)), f"/usr/bin/{PY}")


def test_a_python_without_its_standard_library_is_refused(tmp_path: Path) -> None:
    made = Node(tmp_path)
    (made.root / f"usr/lib/{PY}/os.py").unlink()
    with pytest.raises(InstallError, match=f"no standard library at /usr/lib/{PY}"):
        launcher_node.find_node_python(HostRoot(str(made.root)), f"/usr/bin/{PY}")


def test_a_failed_python_check_installs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    made = Node(tmp_path)
    made.write_conf("10-flannel.conflist", FLANNEL)
    (made.root / f"usr/bin/{PY}").unlink()
    assert made.run() == 1
    assert "the node has no CPython" in caplog.text
    assert list(made.bin.iterdir()) == []
    assert not made.lib.exists()
    assert not (made.conf / install.CONFLIST_NAME).exists()


# --- paths and templates ---------------------------------------------------------------------


def test_host_root_maps_paths_both_ways() -> None:
    root = HostRoot("/host")
    assert root.inside("/etc/cni/net.d") == "/host/etc/cni/net.d"
    assert root.on_node("/host/opt/cni/bin") == "/opt/cni/bin"
    assert HostRoot("/").on_node("/opt/cni/bin") == "/opt/cni/bin"
    with pytest.raises(InstallError, match="not under the host root"):
        root.on_node("/hostile/opt")


def test_the_launcher_reports_a_missing_python_as_cni_error_json() -> None:
    text = templates.launcher(
        name="netplex", version="0.1.0", python="/usr/bin/python3.11", python_version="3.11",
        release="/opt/netplex/releases/0.1.0-abc",
    )
    echo = next(line for line in text.splitlines() if line.strip().startswith("echo "))
    error = json.loads(shlex.split(echo.strip())[1])
    assert error["code"] == 999
    assert error["cniVersion"] == templates.ERROR_CNI_VERSION
    assert "/usr/bin/python3.11 is missing on this node" in error["msg"]
    assert templates.release_of(text) == "/opt/netplex/releases/0.1.0-abc"


def test_paths_with_spaces_are_quoted_in_the_launcher() -> None:
    text = templates.launcher(
        name="netplex", version="0", python="/opt/my python/bin/python3.11", python_version="3.11",
        release="/opt/net plex/releases/x",
    )
    assert "python='/opt/my python/bin/python3.11'" in text
    assert templates.release_of(text) == "/opt/net plex/releases/x"


def test_the_entry_script_runs_the_console_script() -> None:
    text = templates.entry(name="netplex-bridge", module="delegates.entry", attr="bridge")
    assert "from delegates.entry import bridge" in text
    assert text.rstrip().endswith("sys.exit(bridge())")
    compile(text, "netplex-bridge", "exec")


def test_the_release_id_follows_netplex_files_and_dependency_versions(node: Node) -> None:
    own = runtime.Source("netplex", "0.1.0", ((node.source / "fakepkg" / "__init__.py", PurePosixPath("x.py")),))
    dep = runtime.Source("pydantic", "2.0", ())
    first = runtime.release_id([own, dep])
    assert runtime.release_id([own, dep]) == first
    assert runtime.release_id([own, runtime.Source("pydantic", "2.1", ())]) != first
    (node.source / "fakepkg" / "__init__.py").write_text("VALUE = 2\n")
    assert runtime.release_id([own, dep]) != first


def test_default_sources_cover_netplex_and_its_compiled_dependencies() -> None:
    sources = {source.name.lower().replace("_", "-"): source for source in runtime.default_sources()}
    for needed in ("netplex", "msgspec", "pydantic", "pydantic-core", "pyyaml", "pyroute2", "kubernetes"):
        assert needed in sources, needed
    targets = {str(target) for source in sources.values() for _path, target in source.files}
    assert "meta/plugin.py" in targets
    assert "cni/skel.py" in targets
    assert any(target.startswith("pydantic_core/") and ".so" in target for target in targets)
    assert any(target.startswith("msgspec/") and ".so" in target for target in targets)
    assert not any(target.startswith("kubernetes/aio/") for target in targets)  # pruned: unused
    assert not any(target.startswith(("pytest", "_pytest/", "mypy/")) for target in targets)  # test extra: out
    assert all(not target.startswith("..") for target in targets)


def test_installed_files_are_world_readable(node: Node) -> None:
    assert node.run() == 0
    release = next((node.lib / "releases").iterdir())
    for path in release.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o444 == 0o444, path


def test_an_unwritable_bin_dir_is_reported_not_raised(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    blocked = node.bin / "netplex"
    blocked.mkdir()  # a directory where a launcher must go: the rename fails
    assert node.run() == 1
    assert f"netplex install: {node.bin}/" in caplog.text
    assert "Is a directory" in caplog.text
