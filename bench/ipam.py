"""`python -m bench.ipam`: netplex-ipam (cluster-wide IPAM on the Kubernetes API) against
host-local, measured in one run. No root needed: IPAM touches no kernel object.

Measured, against the API double (tests/kube/apidouble.py) over real HTTP on loopback:
- ADD and DEL latency of netplex-ipam and host-local on the same attachment (same
  container ID, ifname and CNI_ARGS), alternating, in-process as `netplex daemon` runs
  them (median and p90 over `--rounds`), and exec'd (`netplex-ipam` / `netplex-host-local`
  per call, thin mode) over fewer rounds;
- API writes per ADD in the steady state (the node holds a block with room): ADD+DEL
  cycles after a warm-up, writes (POST/PUT/PATCH/DELETE) counted at the double, divided
  by the ADDs; reads too;
- allocations per second with 5 nodes allocating at once (threads in one process, each
  its own node name, as five daemons would), from cold (blocks claimed on the way), and
  the number of duplicates (must be 0).
The table goes to stdout, the figures as JSON to bench/results/. Targets are reported,
never asserted: ADD within 1.2x host-local, < 1 API write per ADD, no duplicate."""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import datetime
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from cni import skel
from delegates.ipam import host_local
from delegates.ipam.cluster import plugin as cluster_plugin

RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{{name: double, cluster: {{server: "{server}"}}}}]
contexts: [{{name: double, context: {{cluster: double, user: netplex}}}}]
current-context: double
users: [{{name: netplex, user: {{}}}}]
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ipam", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="in-process ADD/DEL pairs per IPAM")
    parser.add_argument("--exec-rounds", type=int, default=10, help="exec'd ADD/DEL pairs per IPAM")
    parser.add_argument("--per-node", type=int, default=40, help="allocations per node in the 5-node run")
    options = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.kube.apidouble import ApiDouble

    with tempfile.TemporaryDirectory(prefix="netplex-bench-ipam-") as root, ApiDouble() as api:
        for group, version, plural, namespaced in (
            ("ipam.netplex.io", "v1alpha1", "ippools", False), ("ipam.netplex.io", "v1alpha1", "ipblocks", False),
            ("k8s.cni.cncf.io", "v1alpha1", "ipamclaims", True), ("", "v1", "nodes", False),
        ):
            api.register_resource(group, version, plural, namespaced=namespaced)
        kubeconfig = os.path.join(root, "kubeconfig")
        Path(kubeconfig).write_text(KUBECONFIG.format(server=api.url))
        figures = _measure(api, root, kubeconfig, options)
    _print(figures)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"ipam-{stamp}.json").write_text(json.dumps(figures, indent=1))
    return 0


def _confs(root: str, kubeconfig: str, node: str = "node-1") -> dict[str, dict[str, Any]]:
    return {
        "netplex-ipam": {"cniVersion": "1.1.0", "name": "bench", "ipam": {
            "type": "netplex-ipam", "range": "10.90.0.0/16", "gateway": "10.90.0.1", "nodeName": node,
            "dataDir": os.path.join(root, "cluster"), "kubernetes": {"kubeconfig": kubeconfig},
        }},
        "host-local": {"cniVersion": "1.1.0", "name": "bench", "ipam": {
            "type": "host-local", "subnet": "10.91.0.0/16", "dataDir": os.path.join(root, "host-local"),
        }},
    }


def _args(command: str, conf: dict[str, Any], container_id: str) -> skel.CmdArgs:
    return skel.CmdArgs(
        command=command, container_id=container_id, netns="/var/run/netns/bench" if command == "ADD" else "",
        ifname="net1", args=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=p-{container_id[:8]};K8S_POD_UID=u",
        path=(str(BIN),), stdin=json.dumps(conf).encode(),
    )


def _measure(api: Any, root: str, kubeconfig: str, options: argparse.Namespace) -> dict[str, Any]:
    confs = _confs(root, kubeconfig)
    plugins = {"netplex-ipam": cluster_plugin.PLUGIN, "host-local": host_local.PLUGIN}
    for name, plugin in plugins.items():  # warm-up: the pool and the first block, imports
        for _ in range(5):
            cid = uuid.uuid4().hex
            skel.dispatch(plugin, _args("ADD", confs[name], cid))
            skel.dispatch(plugin, _args("DEL", confs[name], cid))
    timings: dict[str, list[float]] = collections.defaultdict(list)
    api.clear_requests()
    for _ in range(options.rounds):
        cid = uuid.uuid4().hex  # the same attachment for both IPAMs
        for name, plugin in plugins.items():
            started = time.perf_counter()
            skel.dispatch(plugin, _args("ADD", confs[name], cid))
            timings[f"{name} ADD"].append(time.perf_counter() - started)
            started = time.perf_counter()
            skel.dispatch(plugin, _args("DEL", confs[name], cid))
            timings[f"{name} DEL"].append(time.perf_counter() - started)
    requests = api.requests
    writes = sum(1 for r in requests if r.method != "GET")
    reads = sum(1 for r in requests if r.method == "GET")
    for _ in range(options.exec_rounds):
        cid = uuid.uuid4().hex
        for name in plugins:
            for command in ("ADD", "DEL"):
                started = time.perf_counter()
                _exec(name, command, confs[name], cid)
                timings[f"{name} exec {command}"].append(time.perf_counter() - started)
    rate, duplicates, blocks = _five_nodes(api, root, kubeconfig, options.per_node)
    summary = {key: _stats(values) for key, values in timings.items()}
    return {
        "latency_ms": summary,
        "add_ratio_in_process": summary["netplex-ipam ADD"]["median"] / summary["host-local ADD"]["median"],
        "add_ratio_exec": summary["netplex-ipam exec ADD"]["median"] / summary["host-local exec ADD"]["median"],
        "steady_state": {"adds": options.rounds, "writes": writes, "reads": reads,
                         "writes_per_add": writes / options.rounds, "reads_per_add": reads / options.rounds},
        "five_nodes": {"allocations": 5 * options.per_node, "per_second": rate, "duplicates": duplicates,
                       "blocks_claimed": blocks},
    }


def _exec(name: str, command: str, conf: dict[str, Any], container_id: str) -> None:
    args = _args(command, conf, container_id)
    env = {"PATH": os.environ.get("PATH", ""), **args.env()}
    proc = subprocess.run(
        [str(BIN / f"netplex-{name.removeprefix('netplex-')}")], input=args.stdin, env=env,
        capture_output=True, timeout=120, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} {command} failed: {proc.stdout.decode()} {proc.stderr.decode()[-500:]}")


def _five_nodes(api: Any, root: str, kubeconfig: str, per_node: int) -> tuple[float, int, int]:
    nodes = [f"bench-node-{i}" for i in range(5)]
    before = sum(1 for r in api.requests if r.method == "POST" and r.path.endswith("/ipblocks"))

    def run(node: str) -> list[str]:
        conf = _confs(root, kubeconfig, node)["netplex-ipam"]
        conf["ipam"]["range"] = "10.92.0.0/22"
        out = []
        for _ in range(per_node):
            answer = skel.dispatch(cluster_plugin.PLUGIN, _args("ADD", conf, uuid.uuid4().hex))
            out.append(str((answer or {})["ips"][0]["address"]))
        return out

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        got = [ip for ips in pool.map(run, nodes) for ip in ips]
    elapsed = time.perf_counter() - started
    blocks = sum(1 for r in api.requests if r.method == "POST" and r.path.endswith("/ipblocks")) - before
    return len(got) / elapsed, len(got) - len(set(got)), blocks


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered) * 1000,
        "p90": ordered[int(len(ordered) * 0.9) - 1 if len(ordered) > 1 else 0] * 1000,
        "n": len(ordered),
    }


def _print(figures: dict[str, Any]) -> None:
    out = io.StringIO()
    out.write("| what | median ms | p90 ms | n |\n|---|---:|---:|---:|\n")
    for key, stats in figures["latency_ms"].items():
        out.write(f"| {key} | {stats['median']:.2f} | {stats['p90']:.2f} | {stats['n']} |\n")
    steady, five = figures["steady_state"], figures["five_nodes"]
    out.write(
        f"\nADD netplex-ipam / host-local: in-process {figures['add_ratio_in_process']:.2f}x, "
        f"exec'd {figures['add_ratio_exec']:.2f}x (target <= 1.2x)\n"
        f"steady state: {steady['writes_per_add']:.3f} API writes and {steady['reads_per_add']:.3f} reads per ADD "
        f"over {steady['adds']} ADD+DEL cycles (target < 1 write)\n"
        f"5 nodes at once: {five['per_second']:.0f} allocations/s, {five['allocations']} allocations, "
        f"{five['blocks_claimed']} blocks claimed, {five['duplicates']} duplicates (target 0)\n"
    )
    print(out.getvalue())


if __name__ == "__main__":
    sys.exit(main())
