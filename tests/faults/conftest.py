"""Fixtures of the faults lane: the kube lane's scene (API double, node namespace, pods)
and the leak table `make faults` prints at the end of the session."""

from __future__ import annotations

import collections
from typing import Any

from tests.kube import conftest as kube_fixtures

api_double = kube_fixtures.api_double
kubeconfig = kube_fixtures.kubeconfig
scene = kube_fixtures.scene
host_unchanged_for_netns = kube_fixtures.host_unchanged_for_netns
make_ns = kube_fixtures.make_ns
host_ns = kube_fixtures.host_ns
uplink = kube_fixtures.uplink

# (mode, kill point) -> counts: trials, killed (the point was reached), and each kind of leak.
TABLE: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(collections.Counter)
LEAK_KINDS = ("pod links", "node veths", "reserved IPs", "cache files", "locks", "temp files", "failed calls")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TABLE:
        return
    terminalreporter.section("faults: kill -9 trials and what they leaked")
    header = f"{'mode':7} {'kill point':28} {'trials':>6} {'killed':>6} " + " ".join(f"{k:>12}" for k in LEAK_KINDS)
    terminalreporter.write_line(header)
    totals: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for (mode, point), counts in sorted(TABLE.items()):
        totals[mode].update(counts)
        terminalreporter.write_line(
            f"{mode:7} {point:28} {counts['trials']:>6} {counts['killed']:>6} "
            + " ".join(f"{counts[k]:>12}" for k in LEAK_KINDS)
        )
    for mode, counts in sorted(totals.items()):
        terminalreporter.write_line(
            f"{mode:7} {'TOTAL':28} {counts['trials']:>6} {counts['killed']:>6} "
            + " ".join(f"{counts[k]:>12}" for k in LEAK_KINDS)
        )
