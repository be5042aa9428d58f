"""`netplex install --node-python`, the option for nodes that want their own CPython: a
real install (netplex and its dependencies, copied from this environment) into scratch
directories, then the installed sh launchers run real ADD/DEL from a clean environment
(`PATH=/usr/bin:/bin` and the CNI_* variables, nothing else: no virtualenv, no
PYTHONPATH) with the node's own python3.11, in throwaway namespaces. (The default, a
release with its own interpreter on a node that has nothing, is
tests/netns/test_node_release.py.) The delegates run as executables too (`builtinDelegates: false`), so the
`netplex-bridge` and `netplex-host-local` launchers are exercised as well."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meta.launcher import node, templates
from tests.netns.conftest import ip_json, ns_name

NETPLEX = shutil.which("netplex", path=str(Path(sys.executable).parent)) or "netplex"
IP = shutil.which("ip") or "/usr/sbin/ip"
CLEAN_PATH = "/usr/bin:/bin"


@dataclasses.dataclass(frozen=True)
class Installed:
    scratch: Path
    bin: Path
    conf: Path
    lib: Path
    python: str

    @property
    def conflist(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.conf / "00-netplex.conflist").read_text())
        return doc

    def plugin_stdin(self) -> bytes:
        """What a runtime hands the netplex entry of the conflist (libcni: name and
        cniVersion injected into the plugin's own keys)."""
        conflist = self.conflist
        [entry] = conflist["plugins"]
        return json.dumps({"cniVersion": conflist["cniVersion"], "name": conflist["name"], **entry}).encode()


def node_python() -> str:
    try:
        return node.find_node_python(node.HostRoot("/"))
    except node.InstallError:
        return os.path.realpath(sys.executable)  # this interpreter outside its venv: a node's python too


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """One full install for the module (it copies ~100 MB): `netplex install --once` run
    as the DaemonSet runs it, with / as the host root and scratch directories."""
    scratch = tmp_path_factory.mktemp("installed")
    made = Installed(
        scratch=scratch, bin=scratch / "opt/cni/bin", conf=scratch / "etc/cni/net.d", lib=scratch / "opt/netplex",
        python=node_python(),
    )
    made.bin.mkdir(parents=True)
    made.conf.mkdir(parents=True)
    primary = {
        "cniVersion": "1.0.0",
        "name": "podnet",
        "plugins": [{
            "type": "netplex-bridge",
            "bridge": f"npl{uuid.uuid4().hex[:8]}",
            "ipam": {"type": "netplex-host-local", "subnet": "10.77.0.0/24", "dataDir": str(scratch / "ipam")},
        }],
    }
    (made.conf / "10-podnet.conflist").write_text(json.dumps(primary))
    networks = scratch / "networks"
    networks.mkdir()
    (networks / "side.yaml").write_text(yaml.safe_dump_all([
        {
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "side", "namespace": "default"},
            "spec": {"config": json.dumps({
                "cniVersion": "1.0.0", "name": "side", "type": "netplex-bridge", "bridge": f"nps{uuid.uuid4().hex[:8]}",
                "ipam": {"type": "netplex-host-local", "subnet": "10.78.0.0/24", "dataDir": str(scratch / "ipam")},
            })},
        },
        {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default",
                                                            "annotations": {"k8s.v1.cni.cncf.io/networks": "side"}},
        },
    ]))
    extra = scratch / "netplex.json"
    extra.write_text(json.dumps({
        "builtinDelegates": False, "cniDir": str(scratch / "cni"), "localNetworks": str(networks),
    }))
    answer = subprocess.run(
        [NETPLEX, "install", "--once", "--host-root=/", f"--cni-bin-dir={made.bin}", f"--cni-conf-dir={made.conf}",
         f"--lib-dir={made.lib}", f"--node-python={made.python}", "--kubeconfig-out=none", f"--config={extra}"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert answer.returncode == 0, answer.stderr
    yield made


def run_clean(
    command: list[str], env: dict[str, str], *, stdin: bytes = b"", ns: str = ""
) -> subprocess.CompletedProcess[bytes]:
    """`command` with exactly `env` plus PATH=/usr/bin:/bin (as `env -i` would), inside
    namespace `ns` when given."""
    prefix = [IP, "netns", "exec", ns_name(ns)] if ns else []
    return subprocess.run(
        [*prefix, *command], input=stdin, env={"PATH": CLEAN_PATH, **env}, capture_output=True, timeout=120,
        check=False,
    )


def cni_env(installed: Installed, command: str, *, container_id: str = "", netns: str = "") -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(installed.bin),
        "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID={container_id}",
    }


def test_the_install_put_launchers_and_a_conflist_in_place(installed: Installed) -> None:
    names = {path.name for path in installed.bin.iterdir()}
    assert {"netplex", "netplex-bridge", "netplex-host-local", "netplex-macvlan", "netplex-ipvlan"} <= names
    release = templates.release_of((installed.bin / "netplex").read_text())
    assert release is not None and Path(release).parent == installed.lib / "releases"
    entry = installed.conflist["plugins"][0]
    assert entry["delegates"][0]["name"] == "podnet"
    assert entry["binDir"] == str(installed.bin)
    assert "kubeconfig" not in entry


def test_version_runs_from_a_clean_environment(installed: Installed) -> None:
    answer = run_clean([str(installed.bin / "netplex")], {"CNI_COMMAND": "VERSION"})
    assert answer.returncode == 0, answer.stderr
    assert "1.0.0" in json.loads(answer.stdout)["supportedVersions"]
    answer = run_clean([str(installed.bin / "netplex"), "version"], {})
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.decode().startswith("netplex ")


def test_the_release_imports_only_its_own_library(installed: Installed) -> None:
    """The node's python with -I -S sees the release's lib only, and every module the
    plugin may import there, kubernetes included (its asyncio client is pruned), loads."""
    release = templates.release_of((installed.bin / "netplex").read_text())
    probe = (
        f"import sys; sys.path[:0] = [{str(Path(str(release)) / 'lib')!r}]; "
        "import meta.plugin, meta.k8s, delegates.bridge.plugin, delegates.macvlan.plugin, delegates.ipam.host_local; "
        "import pydantic_core, yaml, kubernetes; "
        "print('\\n'.join(m.__file__ for m in (meta.k8s, pydantic_core, yaml, kubernetes)))"
    )
    answer = run_clean([installed.python, "-I", "-S", "-c", probe], {})
    assert answer.returncode == 0, answer.stderr.decode()
    for path in answer.stdout.decode().split():
        assert path.startswith(str(release)), path


def test_add_and_del_through_the_installed_launchers(installed: Installed, host_ns: str, container_ns: str) -> None:
    container_id = f"inst{uuid.uuid4().hex[:12]}"
    launcher = str(installed.bin / "netplex")
    add = run_clean([launcher], cni_env(installed, "ADD", container_id=container_id, netns=container_ns),
                    stdin=installed.plugin_stdin(), ns=host_ns)
    assert add.returncode == 0, add.stdout.decode() + add.stderr.decode()
    result = json.loads(add.stdout)
    assert result["cniVersion"] == "1.0.0"

    kernel = {
        link["ifname"]: [info["local"] for info in link.get("addr_info", []) if info["family"] == "inet"]
        for link in ip_json("addr", "show", ns=container_ns)
        if link["ifname"] != "lo"
    }
    assert set(kernel) == {"eth0", "net1"}
    assert ipaddress.ip_address(kernel["eth0"][0]) in ipaddress.ip_network("10.77.0.0/24")
    assert ipaddress.ip_address(kernel["net1"][0]) in ipaddress.ip_network("10.78.0.0/24")
    bridges = {link["ifname"] for link in ip_json("-d", "link", "show", ns=host_ns)
               if link.get("linkinfo", {}).get("info_kind") == "bridge"}
    assert len(bridges) == 2  # both delegates ran, as the installed netplex-bridge executable
    reserved = sorted(p.name for p in (installed.scratch / "ipam").rglob("*") if p.is_file() and p.name[0].isdigit())
    assert sorted(reserved) == sorted([kernel["eth0"][0], kernel["net1"][0]])  # netplex-host-local ran

    for _ in range(2):  # a runtime may DEL twice
        delete = run_clean([launcher], cni_env(installed, "DEL", container_id=container_id, netns=container_ns),
                           stdin=installed.plugin_stdin(), ns=host_ns)
        assert delete.returncode == 0, delete.stdout.decode() + delete.stderr.decode()
    assert [link["ifname"] for link in ip_json("link", "show", ns=container_ns)] == ["lo"]
    assert not [p for p in (installed.scratch / "ipam").rglob("*") if p.is_file() and p.name[0].isdigit()]


def test_a_missing_node_python_gives_a_cni_error(tmp_path: Path) -> None:
    launcher = tmp_path / "netplex"
    launcher.write_text(templates.launcher(
        name="netplex", version="0", python=str(tmp_path / "no-python3.11"), python_version="3.11",
        release=str(tmp_path / "release"),
    ))
    launcher.chmod(0o755)
    answer = run_clean([str(launcher)], {"CNI_COMMAND": "ADD"})
    assert answer.returncode == 1
    error = json.loads(answer.stdout)
    assert error["code"] == 999
    assert "no-python3.11 is missing on this node" in error["msg"]


def test_reinstalling_the_same_release_changes_nothing(installed: Installed) -> None:
    launchers = {path: path.stat().st_ino for path in installed.bin.iterdir()}
    conflist = (installed.conf / "00-netplex.conflist").stat().st_ino
    extra = installed.scratch / "netplex.json"
    answer = subprocess.run(
        [NETPLEX, "install", "--once", "--host-root=/", f"--cni-bin-dir={installed.bin}",
         f"--cni-conf-dir={installed.conf}", f"--lib-dir={installed.lib}", f"--node-python={installed.python}",
         "--kubeconfig-out=none", f"--config={extra}"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert "is already installed" in answer.stderr
    assert {path: path.stat().st_ino for path in installed.bin.iterdir()} == launchers
    assert (installed.conf / "00-netplex.conflist").stat().st_ino == conflist
