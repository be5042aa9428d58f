"""Fixtures for the runtime lanes: a private containerd (CRI) and a private podman (CNI
backend), each running netplex inside a throwaway node namespace (tools.runtimes).

Each lane is module-scoped: started once for its test module, torn down whole after it.
The containerd lane is parametrised over netplex's modes (`lanes.MODES`): every test of
its module runs against a thin-mode lane, then against a daemon-mode one (test IDs end
in `[thin]` / `[daemon]`).
Without root, or without the runtime's packages, the lane's tests skip with the reason
off CI and fail in CI (where scripts/setup.sh installs them): a skip would hide a
regression there.

The autouse `host_unchanged` fixture snapshots the host's links, addresses, routes,
IPv4 forwarding and nftables ruleset before each test and fails the test if any of them
changed; `runtime_residue` removes, at the end of the session, what the runtimes put in
their fixed host paths and checks that no network namespace was left behind.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tools.runtimes import cleanup, containerd, lanes, node, plugins, podman

# The lanes' nodes, and podman's pod namespaces (containerd keeps its own under its state dir).
OUR_NETNS_PREFIXES = ("nprt-", "netns-")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"runtime lane cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _require(kind: str, missing: list[str]) -> None:
    if os.geteuid() != 0:
        _unavailable("needs root: runs a container runtime and creates network namespaces")
    if plugins.loopback_plugin() is None:
        missing = [*missing, "containernetworking-plugins (loopback)"]
    if missing:
        _unavailable(f"{kind} lane needs {', '.join(missing)} (scripts/setup.sh installs them)")


@pytest.fixture(scope="session")
def runtime_residue() -> Iterator[cleanup.Residue]:
    """The runtimes' fixed host paths as they were (new ones are removed at the end);
    no network namespace may be left behind."""
    residue = cleanup.Residue.snapshot()
    netns_before = set(os.listdir(node.RUN_DIR)) if os.path.isdir(node.RUN_DIR) else set()
    yield residue
    netns_after = set(os.listdir(node.RUN_DIR)) if os.path.isdir(node.RUN_DIR) else set()
    # containerd 1.6 puts shim sockets in /run/containerd/s and podman 4.3 its blob-info
    # cache in /var/lib/containers/cache whatever their config says: removed here.
    residue.remove_new()
    ours = sorted(name for name in netns_after - netns_before if name.startswith(OUR_NETNS_PREFIXES))
    assert not ours, f"network namespaces left behind: {ours}"


@pytest.fixture(scope="module", params=lanes.MODES)
def containerd_lane(request: pytest.FixtureRequest, runtime_residue: cleanup.Residue) -> Iterator[lanes.ContainerdLane]:
    missing = containerd.missing_binaries()
    if importlib.util.find_spec("cri_api") is None or importlib.util.find_spec("grpc") is None:
        missing.append("the container-runtime-interface-api Python package")
    _require("containerd", missing)
    with lanes.containerd_lane(request.param) as lane:
        yield lane


@pytest.fixture(scope="module")
def podman_lane(runtime_residue: cleanup.Residue) -> Iterator[lanes.PodmanLane]:
    _require("podman", podman.missing_binaries())
    with lanes.podman_lane() as lane:
        yield lane


def _host_snapshot() -> dict[str, Any]:
    links = {
        (link["ifname"], link["ifindex"], link.get("address"), link.get("mtu"), link.get("master"),
         tuple(sorted(link.get("flags", []))))
        for link in node.ip_json("link", "show")
    }
    addresses = {
        (link["ifname"], info["family"], info["local"], info["prefixlen"])
        for link in node.ip_json("addr", "show")
        for info in link.get("addr_info", [])
    }
    routes = {
        (family, route.get("table", "main"), route["dst"], route.get("gateway"), route.get("dev"))
        for family in ("-4", "-6")
        for route in node.ip_json(family, "route", "show", "table", "all")
    }
    with open("/proc/sys/net/ipv4/ip_forward", encoding="ascii") as handle:
        forwarding = handle.read().strip()
    nft = shutil.which("nft")
    ruleset = ""
    if nft:
        ruleset = subprocess.run([nft, "list", "ruleset"], capture_output=True, text=True, check=False).stdout
    return {"links": links, "addresses": addresses, "routes": routes, "ip_forward": forwarding, "nft": ruleset}


@pytest.fixture(autouse=True)
def host_unchanged() -> Iterator[None]:
    """Fail the test if the host's own network configuration changed during it."""
    if os.geteuid() != 0:
        yield
        return
    before = _host_snapshot()
    yield
    after = _host_snapshot()
    changed = []
    for key, value in before.items():
        if after[key] == value:
            continue
        if isinstance(value, set):
            changed.append(f"{key}: gone {sorted(value - after[key])}, new {sorted(after[key] - value)}")
        else:
            changed.append(f"{key} changed")
    assert not changed, "the host changed: " + "; ".join(changed)
