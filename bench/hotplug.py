"""`python -m bench.hotplug`: how long hot-plug takes, from the annotation edit to the
interface being up in the pod (and, the other way, to it being gone), in daemon mode.

Run as root on a bare machine. Like bench/run.py (whose scene it reuses: a throwaway node
namespace, the API double on its loopback, bridge networks), nothing touches the host.
Each round makes a pod asking for `blue`, ADDs it through the shim and the daemon, then:
- attach: edits the annotation in the API double to `blue,green` and polls the pod's
  namespace (netlink, every ~5 ms) until `net2` is up with an address;
- detach: edits it back to `blue` and polls until `net2` is gone;
- DELs the pod.
Reported: median and p90 of each, and (same run) their ratio to the daemon's ADD of the
whole pod (cluster network + blue). Target, reported and never asserted: attach < 1 s."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench import run

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ROUNDS = 10
POLL = 0.005
LIMIT = 30.0  # seconds a round may wait for the interface before it counts as failed
NETWORKS = "k8s.v1.cni.cncf.io/networks"
TARGET_ATTACH = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotplug", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--inside", metavar="NODE_NS", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (it makes network namespaces)", file=sys.stderr)
        return 1
    if options.inside:
        return _inside(options.inside, Path(options.scratch), rounds=options.rounds)
    return run.run_in_node("bench.hotplug", rounds=options.rounds)


def _inside(node: str, scratch: Path, *, rounds: int) -> int:
    sys.path.insert(0, str(REPO))  # tests.kube.apidouble
    from bench.run import Bench
    from delegates.netlink import netns

    bench = Bench(node, scratch)
    samples: dict[str, list[float]] = {"add_pod": [], "attach": [], "detach": []}
    failures = 0
    try:
        bench.start_daemon()
        for index in range(rounds):
            name = f"hp{index}"
            bench.api.add_pod("default", name, annotations={NETWORKS: "blue"}, node_name="node-1")
            pod = (name, netns.create(f"npbench-{bench.tag}-{index}"), f"c{uuid.uuid4().hex}")
            bench.sync()
            seconds, code, doc, _ = bench.call("ADD", daemon=True, pod=pod)
            if code != 0:
                raise RuntimeError(f"ADD of {name} failed: {doc}")
            samples["add_pod"].append(seconds)
            for phase, networks, done in (
                ("attach", "blue,green", lambda path: _net2(path) == "up"),
                ("detach", "blue", lambda path: _net2(path) == "gone"),
            ):
                started = time.perf_counter()
                bench.api.annotate_pod("default", name, {NETWORKS: networks})
                while not done(pod[1]):
                    if time.perf_counter() - started > LIMIT:
                        failures += 1
                        break
                    time.sleep(POLL)
                else:
                    samples[phase].append(time.perf_counter() - started)
            bench.call("DEL", daemon=True, pod=pod)
    finally:
        bench.close()
    figures: dict[str, Any] = {
        "rounds": rounds, "failures": failures, "when": datetime.datetime.now(datetime.UTC).isoformat(),
        **{phase: _stats(values) for phase, values in samples.items()},
    }
    print(table(figures))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"hotplug-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(figures, indent=1))
    print(f"\nfigures: {path}")
    return 1 if failures else 0


def _net2(path: str) -> str:
    """"up" (with an address), "gone", or "coming" for the pod's net2."""
    from delegates.netlink import addrs, errors, links

    found = {link.name: link for link in links.list_links(path)}
    if "net2" not in found:
        return "gone"
    try:
        if not found["net2"].up or not addrs.list_addrs(path, "net2"):
            return "coming"
    except errors.LinkNotFound:  # went between the two reads
        return "changing"
    return "up"


def _stats(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"median": float("nan"), "p90": float("nan")}
    ordered = sorted(samples)
    return {"median": statistics.median(ordered), "p90": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]}


def table(figures: dict[str, Any]) -> str:
    base = figures["add_pod"]["median"]
    lines = [f"hot-plug, {figures['rounds']} rounds, {figures['failures']} failed", "",
             f"{'':34}{'median ms':>10}{'p90 ms':>10}{'/ pod ADD':>11}"]
    for key, label in (("add_pod", "daemon ADD of the pod (2 networks)"), ("attach", "edit -> net2 up"),
                       ("detach", "edit -> net2 gone")):
        stats = figures[key]
        median, p90 = stats["median"], stats["p90"]
        lines.append(f"{label:34}{median * 1000:10.0f}{p90 * 1000:10.0f}{median / base:11.2f}")
    verdict = "met" if figures["attach"]["p90"] < TARGET_ATTACH else "missed"
    lines.append(f"\ntarget: edit -> interface up under {TARGET_ATTACH:.0f} s (p90): {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
