"""`python -m bench.policy`: network policy at scale, as root, in namespaces made here.

50 pods on one node, 20 MultiNetworkPolicies for their secondary network, enforced by
the real `netplex daemon` (subprocess, in a throwaway node namespace) watching the API
double (tests/kube/apidouble.py) over HTTP. The pods are cheap on purpose: each is a
real, empty network namespace plus the attachment-cache record netplex's ADD would have
written (netns, pod, network, addresses) and a network-status annotation in the double;
no veth is made, because nft binds rules to interface *names* (`iifname "net1"`), so the
rules the engine programs, and what a transaction costs, are the same as with real links.

Measured, in one run:
- policy update -> enforced everywhere: from the API double's update to the daemon's log
  line "N pod(s) ... reprogrammed" (the reconcile that carried it, all its nft
  transactions done), median and p90 over the rounds; for a structure change (a rule's
  port: each selected pod's table is replaced) and for a peer pod joining (set updates);
- the floor: one transaction of a typical pod's ruleset, the daemon's way (libnftables
  in a thread inside the netns) and the fallback's (`nsenter --net nft -j -f -`, a child),
  and an empty `nsenter true`, measured in the same run;
- nftables rules per pod (as `nft -j list table` counts them) and set elements;
- the daemon's CPU seconds (utime+stime from /proc) over the measured rounds, and its RSS.
Figures go to stdout and to bench/results/policy-*.json. Nothing is asserted."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.run import KUBECONFIG, RESULTS
from delegates.netlink import netns
from meta import cache, shim
from meta.model import NETWORK_STATUS_ANNOTATION
from meta.policy import compile as rules
from meta.policy import model, nft, select
from meta.source import Namespace, Pod, PolicyObject
from tests.kube.apidouble import ApiDouble

PODS = 50
POLICIES = 20
ROUNDS = 10
NETWORK = "default/net-a"
# `python -m meta.daemon --config FILE`, with SIGUSR2 dumping every thread's stack to the log
_DAEMON = (
    "import faulthandler, runpy, signal, sys; faulthandler.register(signal.SIGUSR2, all_threads=True); "
    "sys.argv = ['meta.daemon', '--config', sys.argv[1]]; runpy.run_module('meta.daemon', run_name='__main__')"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.policy")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--pods", type=int, default=PODS)
    parser.add_argument("--policies", type=int, default=POLICIES)
    options = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.policy needs root (it makes network namespaces)", file=sys.stderr)
        return 2
    run_id = uuid.uuid4().hex[:6]
    made: list[str] = []
    api = ApiDouble()
    daemon: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="netplex-bench-policy-") as scratch_text:
        scratch = Path(scratch_text)
        try:
            node = netns.create(f"bpn-{run_id}")
            made.append(node)
            subprocess.run(["ip", "-n", os.path.basename(node), "link", "set", "lo", "up"], check=True)
            netns.call(node, api.start)
            pods = _seed(api, scratch, run_id, made, pods=options.pods, policies=options.policies)
            daemon, log_path = _start_daemon(node, scratch, api)
            _wait_log(log_path, "reprogrammed", after=0.0, timeout=120)
            _wait_quiet(log_path)
            figures = _measure(api, daemon, log_path, pods, options)
        except BaseException:
            if daemon is not None:
                os.kill(daemon.pid, signal.SIGUSR2)  # the daemon's thread stacks, into its log (if enabled)
                time.sleep(1)
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / "policy-failed-daemon.log").write_bytes((scratch / "daemon.log").read_bytes())
            raise
        finally:
            if daemon is not None:
                daemon.terminate()
                daemon.wait(30)
            api.close()
            for path in reversed(made):
                netns.remove(os.path.basename(path))
    figures["kernel"] = os.uname().release
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"policy-{stamp}.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))
    return 0


def _spec(index: int) -> dict[str, Any]:
    """Policy `index`: selects group g(index % 10); ingress from an app label on two ports
    plus an ipBlock; every fourth one isolates egress too."""
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": {"group": f"g{index % 10}"}},
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": f"a{index % 5}"}}}],
             "ports": [{"port": 8000 + index}, {"protocol": "UDP", "port": 9000, "endPort": 9010}]},
            {"from": [{"ipBlock": {"cidr": "10.200.0.0/16", "except": ["10.200.1.0/24"]}}]},
        ],
    }
    if index % 4 == 0:
        spec["policyTypes"] = ["Ingress", "Egress"]
        spec["egress"] = [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "a0"}}}]}]
    return spec


def _seed(api: ApiDouble, scratch: Path, run_id: str, made: list[str], *, pods: int, policies: int) -> list[Pod]:
    api.add_namespace("default")
    cni_dir = scratch / "cni"
    seeded = []
    for index in range(pods):
        name = f"p{index}"
        path = netns.create(f"bpp-{run_id}-{index}")
        made.append(path)
        address = f"10.50.{index // 200}.{index % 200 + 10}"
        labels = {"app": f"a{index % 5}", "group": f"g{index % 10}"}
        status = json.dumps([{"name": NETWORK, "interface": "net1", "ips": [address], "default": False}])
        uid = str(uuid.uuid4())
        api.add_pod("default", name, labels=labels, uid=uid, annotations={NETWORK_STATUS_ANNOTATION: status})
        entry = cache.CacheEntry(
            container_id=f"c{uuid.uuid4().hex}", ifname="eth0", netns=path, pod_namespace="default", pod_name=name,
            pod_uid=uid, cni_version="1.0.0",
            attachments=[
                cache.CachedAttachment(network="cluster", ifname="eth0", conflist={}, is_cluster_network=True,
                                       state="added"),
                cache.CachedAttachment(network=NETWORK, ifname="net1", conflist={}, state="added",
                                       result={"cniVersion": "1.0.0", "ips": [{"address": f"{address}/16"}]}),
            ],
        )
        cache.write(str(cni_dir), entry)
        seeded.append(Pod("default", name, uid=uid, labels=labels, annotations={"netns": path}))
    for index in range(policies):
        api.add_policy("default", f"policy-{index}", _spec(index), policy_for=NETWORK)
    return seeded


def _start_daemon(node: str, scratch: Path, api: ApiDouble) -> tuple[subprocess.Popen[bytes], Path]:
    kubeconfig = scratch / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.format(server=api.url))
    config = {"socketPath": str(scratch / "netplex.sock"), "nodeName": "node-1", "kubeconfig": str(kubeconfig),
              "cniDir": str(scratch / "cni"), "logLevel": "info"}
    (scratch / "daemon.json").write_text(json.dumps(config))
    log_path = scratch / "daemon.log"
    log = open(log_path, "ab")  # noqa: SIM115 - the daemon's stdout for its life
    proc = subprocess.Popen(
        ["ip", "netns", "exec", os.path.basename(node), sys.executable, "-c", _DAEMON, str(scratch / "daemon.json")],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )
    client = shim.Client(config["socketPath"], timeout=5.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.call("GET", shim.PATH_READYZ)[0] == 200:
                return proc, log_path
        except (shim.Unreachable, shim.NoAnswer):
            pass
        time.sleep(0.05)
    raise RuntimeError("the daemon did not become ready:\n" + log_path.read_text()[-3000:])


def _measure(
    api: ApiDouble, daemon: subprocess.Popen[bytes], log_path: Path, pods: list[Pod], options: argparse.Namespace
) -> dict[str, Any]:
    cpu_before = _cpu_seconds(daemon.pid)
    structure: list[float] = []
    reprogrammed: list[int] = []
    for round_ in range(options.rounds):
        index = round_ % options.policies
        spec = _spec(index)
        spec["ingress"][0]["ports"][0]["port"] = 20000 + round_  # a rule changes: tables are replaced
        sent = time.time()
        api.update_policy("default", f"policy-{index}", spec)
        when, line = _wait_log(log_path, "reprogrammed", after=sent, timeout=60)
        structure.append(when - sent)
        reprogrammed.append(int(line.split("network policy: ")[1].split()[0]))
        _wait_quiet(log_path)
    joins: list[float] = []
    for round_ in range(options.rounds):
        address = f"10.60.0.{round_ + 10}"
        status = json.dumps([{"name": NETWORK, "interface": "net1", "ips": [address], "default": False}])
        sent = time.time()
        api.add_pod("default", f"peer-{round_}", labels={"app": "a1"}, node_name="node-2",
                    annotations={NETWORK_STATUS_ANNOTATION: status})
        when, _ = _wait_log(log_path, "reprogrammed", after=sent, timeout=60)
        joins.append(when - sent)
        _wait_quiet(log_path)
    cpu = _cpu_seconds(daemon.pid) - cpu_before
    passes = [float(line.rsplit(" in ", 1)[1].split()[0]) / 1000
              for line in log_path.read_text(errors="replace").splitlines() if "reprogrammed" in line]
    floor = _floor(pods)
    per_pod = _rules_per_pod(pods)
    return {
        "pods": len(pods), "policies": options.policies, "rounds": options.rounds,
        "policy_update_to_enforced_ms": _stats(structure),
        "pods_reprogrammed_per_update": statistics.median(reprogrammed),
        "reconcile_pass_ms": _stats(passes[-2 * options.rounds:]),
        "peer_join_to_enforced_ms": _stats(joins),
        "one_transaction_libnftables_ms": floor["transaction"],
        "one_transaction_nsenter_nft_child_ms": floor["child"], "nsenter_true_ms": floor["nsenter"],
        "rules_per_pod": per_pod,
        "daemon_cpu_seconds_over_rounds": round(cpu, 2),
        "daemon_rss_mib": _rss(daemon.pid),
    }


def _wait_log(path: Path, marker: str, *, after: float, timeout: float) -> tuple[float, str]:
    """The wall-clock time of the first log line holding `marker` stamped after `after`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text(errors="replace").splitlines():
            if marker not in line:
                continue
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if stamp >= after - 0.001:
                return stamp, line
        time.sleep(0.02)
    raise RuntimeError(f"no {marker!r} in the daemon's log within {timeout}s:\n" + path.read_text()[-3000:])


def _wait_quiet(path: Path, quiet: float = 0.5) -> None:
    """Until the log has not grown for `quiet` seconds (the last reconcile is over)."""
    size, since = -1, time.monotonic()
    while time.monotonic() - since < quiet:
        now = path.stat().st_size
        if now != size:
            size, since = now, time.monotonic()
        time.sleep(0.05)


def _floor(pods: list[Pod]) -> dict[str, float]:
    """One pod's ruleset as one transaction, and nsenter alone, in a namespace of our own."""
    path = netns.create(f"bpf-{uuid.uuid4().hex[:8]}")
    try:
        world = select.World(
            policies=[model.parse(PolicyObject("default", f"policy-{i}", {model.POLICY_FOR_ANNOTATION: NETWORK},
                                               _spec(i))) for i in range(POLICIES)],
            namespaces={"default": Namespace("default")}, pods=pods,
        )
        ruleset = rules.compile_pod(world, pods[0], [rules.LocalInterface("net1", NETWORK)])
        transaction, child, nsenter = [], [], []
        for _ in range(15):
            started = time.perf_counter()
            nft.apply(path, ruleset.replace_commands())
            transaction.append(time.perf_counter() - started)
            started = time.perf_counter()
            nft.apply_in_child(path, ruleset.replace_commands())
            child.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(["nsenter", f"--net={path}", "true"], check=True)
            nsenter.append(time.perf_counter() - started)
        return {"transaction": round(statistics.median(transaction) * 1000, 1),
                "child": round(statistics.median(child) * 1000, 1),
                "nsenter": round(statistics.median(nsenter) * 1000, 1)}
    finally:
        netns.remove(os.path.basename(path))


def _rules_per_pod(pods: list[Pod]) -> dict[str, float]:
    counts, elements = [], []
    for path in sorted({Path(p.annotations.get("netns", "")) for p in pods} - {Path()}):
        doc = nft.list_table(str(path), rules.FAMILY, rules.TABLE) or {}
        items = doc.get("nftables", [])
        counts.append(sum(1 for item in items if "rule" in item))
        elements.append(sum(len(item["set"].get("elem", [])) for item in items if "set" in item))
    return {"median": statistics.median(counts), "max": max(counts), "min": min(counts),
            "set_elements_median": statistics.median(elements)}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss(pid: int) -> dict[str, float]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = round(int(value.split()[0]) / 1024, 1)
    return found


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median": round(statistics.median(ordered) * 1000, 1),
            "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))] * 1000, 1),
            "max": round(ordered[-1] * 1000, 1)}


if __name__ == "__main__":
    sys.exit(main())
