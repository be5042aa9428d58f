"""A node needs nothing: `netplex install --host-root R` into an empty R (only /proc,
/sys, /dev and /run/netns bind-mounted: no /usr, no /lib, no Python), then everything
runs under `chroot R` from an empty environment: VERSION, a full ADD/CHECK/DEL of a pod
with a cluster network and two extra networks from a local manifest directory (every
delegate exec'd through its installed launcher, so the release's interpreter is
re-executed by path), and the same pod through the daemon-mode shim against a daemon
running outside the chroot, including the shim's DEL fallback with the daemon down.
Kernel state is asserted in throwaway namespaces; the host's is guarded by conftest."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meta import shim
from tests.netns.conftest import ip_json, ns_name
from tests.netns.nodetree import CHROOT, IP, SUBNETS, BareNode

pytestmark = pytest.mark.netns

ROOT_ENTRIES_ALLOWED = {"dev", "proc", "run", "sys", "opt", "etc", "var"}
DAEMON_START_TIMEOUT = 60.0


def in_chroot(
    node: BareNode, env: dict[str, str], *, stdin: bytes = b"", ns: str = "", program: str = "/opt/cni/bin/netplex",
    args: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[bytes]:
    """`chroot R PROGRAM` with exactly `env` (no PATH, nothing inherited), in `ns`."""
    prefix = [IP, "netns", "exec", ns_name(ns)] if ns else []
    return subprocess.run(
        [*prefix, CHROOT, str(node.root), program, *args], input=stdin, env=env, capture_output=True, timeout=180,
        check=False,
    )


def cni_env(command: str, container_id: str, netns: str) -> dict[str, str]:
    return {
        "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
        "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID={container_id}",
    }


def pod_addresses(container_ns: str) -> dict[str, list[str]]:
    return {
        link["ifname"]: [info["local"] for info in link.get("addr_info", []) if info["family"] == "inet"]
        for link in ip_json("addr", "show", ns=container_ns)
        if link["ifname"] != "lo"
    }


def reservations(node: BareNode) -> list[str]:
    data = node.inside("/var/lib/cni/networks")
    return sorted(p.name for p in data.rglob("*") if p.is_file() and p.name[0].isdigit()) if data.exists() else []


def assert_attached(node: BareNode, host_ns: str, container_ns: str) -> None:
    kernel = pod_addresses(container_ns)
    assert set(kernel) == {"eth0", "net1", "net2"}
    for ifname, network in (("eth0", "podnet"), ("net1", "side-a"), ("net2", "side-b")):
        assert ipaddress.ip_address(kernel[ifname][0]) in ipaddress.ip_network(SUBNETS[network]), ifname
    bridges = {link["ifname"] for link in ip_json("-d", "link", "show", ns=host_ns)
               if link.get("linkinfo", {}).get("info_kind") == "bridge"}
    assert bridges == {f"npp{node.tag}", f"npa{node.tag}", f"npb{node.tag}"}
    assert reservations(node) == sorted(address for addresses in kernel.values() for address in addresses)


def assert_detached(node: BareNode, container_ns: str) -> None:
    assert [link["ifname"] for link in ip_json("link", "show", ns=container_ns)] == ["lo"]
    assert reservations(node) == []


def test_the_install_left_a_root_without_usr_lib_or_python(bare_node: BareNode) -> None:
    assert set(os.listdir(bare_node.root)) <= ROOT_ENTRIES_ALLOWED
    for absent in ("usr", "lib", "lib64", "bin", "sbin"):
        assert not (bare_node.root / absent).exists()
    runtime = bare_node.release() / "runtime"
    assert {"libc.so.6", "ld-linux-x86-64.so.2", "python3.11"} <= set(os.listdir(runtime / "lib"))
    first_line = bare_node.inside("/opt/cni/bin/netplex").read_text().splitlines()[0]
    assert first_line == f"#!/opt/netplex/releases/{bare_node.release().name}/runtime/bin/python3.11 -IS"
    print(f"\nrelease built and installed in {bare_node.install_seconds:.1f}s")


def test_version_answers_in_the_chroot_from_an_empty_environment(bare_node: BareNode) -> None:
    answer = in_chroot(bare_node, {"CNI_COMMAND": "VERSION"}, stdin=b"{}")
    assert answer.returncode == 0, answer.stderr.decode()
    assert "1.0.0" in json.loads(answer.stdout)["supportedVersions"]
    human = in_chroot(bare_node, {}, args=("version",))
    assert human.returncode == 0, human.stderr.decode()
    assert human.stdout.decode().startswith("netplex ")


def test_the_release_interpreter_is_its_own_and_can_be_re_executed(bare_node: BareNode) -> None:
    """sys.executable is the release's interpreter, and running it again by that path
    works in the chroot (as the plugin does when it execs a delegate's launcher)."""
    python = f"/opt/netplex/releases/{bare_node.release().name}/runtime/bin/python3.11"
    probe = (
        "import subprocess, sys, ssl, zlib, ctypes; print(sys.executable); "
        "print(subprocess.run([sys.executable, '-I', '-S', '-c', 'import sys; print(sys.prefix)'], "
        "capture_output=True, text=True, check=True).stdout.strip())"
    )
    answer = in_chroot(bare_node, {}, program=python, args=("-I", "-S", "-c", probe))
    assert answer.returncode == 0, answer.stderr.decode()
    executable, prefix = answer.stdout.decode().split()
    assert executable == python
    assert prefix == python.rsplit("/bin/", 1)[0]


def test_add_check_and_del_of_three_networks_in_the_chroot(
    bare_node: BareNode, host_ns: str, container_ns: str
) -> None:
    container_id = f"bare{uuid.uuid4().hex[:12]}"
    stdin = bare_node.entry()
    add = in_chroot(bare_node, cni_env("ADD", container_id, container_ns), stdin=stdin, ns=host_ns)
    assert add.returncode == 0, add.stdout.decode() + add.stderr.decode()
    result = json.loads(add.stdout)
    assert_attached(bare_node, host_ns, container_ns)

    check = in_chroot(bare_node, cni_env("CHECK", container_id, container_ns),
                      stdin=bare_node.entry(prevResult=result), ns=host_ns)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()

    for _ in range(2):  # containerd DELs twice
        delete = in_chroot(bare_node, cni_env("DEL", container_id, container_ns), stdin=stdin, ns=host_ns)
        assert delete.returncode == 0, delete.stdout.decode() + delete.stderr.decode()
    assert_detached(bare_node, container_ns)


@pytest.fixture
def outside_daemon(bare_node: BareNode, host_ns: str) -> Iterator[subprocess.Popen[bytes]]:
    """`netplex daemon` (this checkout, not the release) outside the chroot, as in a pod:
    in the node namespace, in a mount namespace of its own where the node's /var and /run
    (R's) are mounted at their node paths, with its socket at R/run/netplex, exec'd
    delegates chrooted into R (`chrootDir`)."""
    config = bare_node.scratch / f"daemon-{uuid.uuid4().hex[:6]}.json"
    config.write_text(json.dumps({"socketPath": "/run/netplex/netplex.sock", "chrootDir": str(bare_node.root)}))
    log = open(bare_node.scratch / f"{config.stem}.log", "wb")  # noqa: SIM115 (closed below)
    setup = 'mount --rbind "$1/var" /var && mount --rbind "$1/run" /run && shift && exec "$@"'
    proc = subprocess.Popen(
        [IP, "netns", "exec", ns_name(host_ns), "unshare", "--mount", "--propagation", "slave",
         "sh", "-c", setup, "sh", str(bare_node.root), sys.executable, "-m", "meta.daemon", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, cwd=str(Path(__file__).resolve().parents[2]),
    )
    try:
        client = shim.Client(str(bare_node.inside("/run/netplex/netplex.sock")), timeout=5)
        if not client.wait_ready(DAEMON_START_TIMEOUT):
            pytest.fail(f"the daemon did not become ready: {(bare_node.scratch / f'{config.stem}.log').read_text()}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def test_daemon_mode_shim_in_the_chroot_and_its_del_fallback(
    bare_node: BareNode, host_ns: str, container_ns: str, outside_daemon: subprocess.Popen[bytes]
) -> None:
    stdin = bare_node.entry(daemonSocket="/run/netplex/netplex.sock")
    container_id = f"bared{uuid.uuid4().hex[:11]}"

    def shim_call(command: str) -> subprocess.CompletedProcess[bytes]:
        return in_chroot(bare_node, cni_env(command, container_id, container_ns), stdin=stdin, ns=host_ns)

    add = shim_call("ADD")
    assert add.returncode == 0, add.stdout.decode() + add.stderr.decode()
    assert_attached(bare_node, host_ns, container_ns)
    cache = list(bare_node.inside("/var/lib/cni/netplex").rglob(f"*{container_id}*"))
    assert cache  # the daemon wrote it at the node's path, where the shim on the node finds it
    delete = shim_call("DEL")
    assert delete.returncode == 0, delete.stdout.decode() + delete.stderr.decode()
    assert_detached(bare_node, container_ns)

    add = shim_call("ADD")
    assert add.returncode == 0, add.stdout.decode() + add.stderr.decode()
    assert_attached(bare_node, host_ns, container_ns)
    outside_daemon.send_signal(signal.SIGTERM)
    assert outside_daemon.wait(timeout=30) == 0
    delete = shim_call("DEL")  # the daemon is gone: the shim DELs by itself, with the release
    assert delete.returncode == 0, delete.stdout.decode() + delete.stderr.decode()
    assert_detached(bare_node, container_ns)  # with no daemon to do it: the shim did, from the cache
