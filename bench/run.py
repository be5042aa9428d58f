"""`make bench` (`python -m bench.run`): netplex's latency and throughput, thin mode and
daemon mode, each as a ratio to the raw kernel floor measured in the same run.

Run as root on a bare machine. Everything happens in namespaces made here: the outer
process makes a throwaway node namespace and runs the measurements inside it (`ip netns
exec`), so bridges, host veths and the uplink never touch the host; the API double
(tests/kube/apidouble.py) listens on the node's loopback. The pod has a cluster network
and three NAD networks (bridge, bridge, macvlan).

The runtime's side execs what a node has: the launcher of a release that `netplex install`
builds into the scratch directory (its own interpreter, `-I -S`), as the DaemonSet installs
it; the development venv's console script (with `site` and the editable-install hook) is
measured beside it for daemon ADD.

Measured, in one run:
- ADD and DEL latency (median, p90) of that pod, thin mode (one `netplex` process per
  call) and daemon mode (`netplex daemon` plus the shim), against the API double;
- the raw floor (bench/floor.py): the same kernel operations with pyroute2, one process;
  DEL both one link at a time and as one interface-group batch;
- throughput: 20 pods ADDed concurrently, then DELed, pods/s, with zero failures and
  zero leaks checked (links, IPAM reservations, cache files);
- peak RSS of the daemon (after the throughput run: 20 pods in flight) and of the shim;
- API requests per pod ADD (the daemon's own list/watch requests are not counted);
- the shim's overhead: a STATUS round trip through the shim (Python start, connect,
  answer), an upper bound of what the shim adds to every call.
The table goes to stdout, the figures as JSON to bench/results/. Targets are reported,
never asserted."""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
NETPLEX = str(Path(sys.executable).with_name("netplex"))
NODE_NAME = "node-1"
ROUNDS = 15
WARMUP = 2
THROUGHPUT_PODS = 20
DAEMON_CONCURRENCY = 20
# JSON, as `netplex install` writes the plugin's kubeconfig (thin mode then never imports yaml)
KUBECONFIG = """\
{{"apiVersion": "v1", "kind": "Config", "current-context": "double",
 "clusters": [{{"name": "double", "cluster": {{"server": "{server}"}}}}],
 "contexts": [{{"name": "double", "context": {{"cluster": "double", "user": "netplex"}}}}],
 "users": [{{"name": "netplex", "user": {{}}}}]}}
"""
TARGETS = {
    "daemon ADD / floor ADD": 1.3,
    "daemon DEL / floor DEL (one by one)": 0.5,
    "thin ADD / floor ADD": 10.0,
    "shim overhead ms": 15.0,
    "daemon CPU ms per ADD (20 pods at once)": 20.0,
    "daemon peak RSS MiB": 100.0,
    "daemon API requests per ADD": 1.0,
}
THROUGHPUT_TARGET = 40.0  # pods/s, 20 at once (2x what 20 parallel execs of a Go meta-plugin reach here)
EXTRA_NETWORKS = ("blue", "green", "red", "n4", "n5", "n6")  # per-network cost at 1, 3 and 6 of them
PER_NETWORK_COUNTS = (1, 3, 6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="timed ADD/DEL rounds per mode")
    parser.add_argument("--inside", metavar="NODE_NS", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (it makes network namespaces)", file=sys.stderr)
        return 1
    if options.inside:
        return _inside(options.inside, Path(options.scratch), rounds=options.rounds)
    return run_in_node("bench.run", rounds=options.rounds)


# -- the outer process: the node namespace and cleanup -----------------------------------


def run_in_node(module: str, *, rounds: int) -> int:
    """Run `python -m module --inside NODE` in a throwaway node namespace with a scratch
    directory, then remove every namespace the run made (the benchmarks' outer process)."""
    from delegates.netlink import netns

    tag = uuid.uuid4().hex[:6]
    node = f"npbench-node-{tag}"
    scratch = Path(tempfile.mkdtemp(prefix=f"netplex-{module.replace('.', '-')}-"))
    netns.create(node)
    try:
        return subprocess.run(
            ["ip", "netns", "exec", node, sys.executable, "-m", module, "--inside", node,
             "--scratch", str(scratch), "--rounds", str(rounds)],
            cwd=REPO, check=False,
        ).returncode
    finally:
        for name in os.listdir(netns.RUN_DIR):
            if name.startswith(f"npbench-{tag}-"):
                netns.remove(name)
        netns.remove(node)
        shutil.rmtree(scratch, ignore_errors=True)


# -- inside the node namespace ------------------------------------------------------------


class Bench:
    """The scene: API double, networks, pod namespaces, and the two ways to call netplex."""

    def __init__(self, node: str, scratch: Path) -> None:
        from delegates.netlink import links
        from tests.kube.apidouble import ApiDouble

        self.node = node
        self.tag = node.rsplit("-", 1)[1]
        self.scratch = scratch
        links.set_up(None, "lo")
        self.uplink = "npbup0"
        links.create_veth(host_name=self.uplink, peer_name="npbup0p", peer_netns=f"/proc/{os.getpid()}/ns/net")
        links.set_up(None, "npbup0p")
        self.api = ApiDouble()
        self.api.start()
        self.kubeconfig = scratch / "kubeconfig"
        self.kubeconfig.write_text(KUBECONFIG.format(server=self.api.url))
        self.cni_dir = scratch / "cni"
        self.ipam_dir = scratch / "ipam"
        self.socket = str(scratch / "netplex.sock")
        self._nad("kube-system", "cluster", "bridge", "npbc0", "10.100.0.0/16", routes=True)
        self._nad("default", "blue", "bridge", "npbb0", "10.101.0.0/16")
        self._nad("default", "green", "bridge", "npbg0", "10.102.0.0/16")
        self._nad("default", "red", "macvlan", self.uplink, "10.103.0.0/16")
        for index, name in enumerate(EXTRA_NETWORKS[3:], start=4):
            self._nad("default", name, "bridge", f"npb{index}0", f"10.10{index}.0.0/16")
        self.daemon: subprocess.Popen[bytes] | None = None
        self.pods = 0
        self.launcher = NETPLEX  # what the runtime execs; `install()` makes it a node's launcher
        self.release_python = sys.executable

    def install(self) -> float:
        """Build a release with `netplex install` (its own interpreter and libraries) into the
        scratch directory, as the DaemonSet does on a node, and exec its launcher from now
        on (`#!` to the release's interpreter with `-I -S`: no site, no editable-install
        hook). Returns the seconds the build took."""
        from bench import installed

        release, seconds = installed.build_release(self.scratch, socket_path=self.socket)
        self.launcher = str(self.scratch / "bin" / "netplex")
        self.release_python = str(release / "runtime" / "bin" / "python3.11")
        return seconds

    def _nad(self, namespace: str, name: str, kind: str, master: str, subnet: str, *, routes: bool = False) -> None:
        ipam: dict[str, Any] = {"type": "host-local", "subnet": subnet, "dataDir": str(self.ipam_dir)}
        if routes:
            ipam["routes"] = [{"dst": "0.0.0.0/0"}]
        conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": name, "type": kind, "ipam": ipam}
        conf |= {"bridge": master, "isGateway": routes} if kind == "bridge" else {"master": master, "mode": "bridge"}
        self.api.add_nad(namespace, name, config=json.dumps(conf))

    def conf(self, *, daemon: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "kubeconfig": str(self.kubeconfig),
            "clusterNetwork": "cluster", "cniDir": str(self.cni_dir), "binDir": str(Path(NETPLEX).parent),
        }
        if daemon:
            doc["daemonSocket"] = self.socket
        return doc

    def new_pod(self, networks: str = "blue,green,red") -> tuple[str, str, str]:
        """(name, netns path, container ID) of a fresh pod asking for `networks`."""
        from delegates.netlink import netns

        self.pods += 1
        name = f"pod{self.pods}"
        self.api.add_pod("default", name, annotations={"k8s.v1.cni.cncf.io/networks": networks},
                         node_name=NODE_NAME)
        path = netns.create(f"npbench-{self.tag}-{self.pods}")
        return name, path, f"c{uuid.uuid4().hex}"

    def call(
        self, command: str, *, daemon: bool, pod: tuple[str, str, str], launcher: str = ""
    ) -> tuple[float, int, Any, int]:
        """One CNI call as a runtime makes it: (seconds, exit code, output, peak RSS KiB)."""
        name, path, container_id = pod
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id, "CNI_NETNS": path, "CNI_IFNAME": "eth0",
            "CNI_PATH": str(Path(NETPLEX).parent),
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};"
                        f"K8S_POD_INFRA_CONTAINER_ID={container_id}",
        }
        return _timed_process([launcher or self.launcher], json.dumps(self.conf(daemon=daemon)).encode(), env)

    def start_daemon(self) -> None:
        from meta import shim

        config = self.scratch / "daemon.json"
        config.write_text(json.dumps({
            "socketPath": self.socket, "nodeName": NODE_NAME, "kubeconfig": str(self.kubeconfig),
            "concurrency": DAEMON_CONCURRENCY, "logLevel": "warning",
        }))
        log = open(self.scratch / "daemon.log", "ab")  # noqa: SIM115 - lives as long as the daemon
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "meta.daemon", "--config", str(config)], stdout=log, stderr=log, cwd=REPO
        )
        if not shim.Client(self.socket, timeout=5).wait_ready(30):
            raise RuntimeError(f"the daemon did not become ready; see {self.scratch / 'daemon.log'}")

    def daemon_cpu(self) -> float:
        """CPU seconds (user + system) the daemon has used so far; 0 without a daemon."""
        if self.daemon is None:
            return 0.0
        fields = Path(f"/proc/{self.daemon.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def sync(self) -> None:
        from meta import shim

        shim.Client(self.socket, timeout=15).call("POST", shim.PATH_SYNC)

    def stop_daemon(self) -> None:
        if self.daemon is not None:
            self.daemon.terminate()
            self.daemon.wait(30)
            self.daemon = None

    def leftovers(self, pods: list[tuple[str, str, str]]) -> list[str]:
        """What these pods left behind: links in their namespaces, their host veths,
        IPs host-local still holds for them, their cache files."""
        from delegates import common
        from delegates.netlink import links

        found = []
        node_links = {link.name for link in links.list_links(None)}
        reservations = {
            path: path.read_text(errors="replace")
            for path in self.ipam_dir.rglob("*") if path.is_file() and path.name[0].isdigit()
        }
        for name, path, container_id in pods:
            extra = [link.name for link in links.list_links(path) if link.name != "lo"]
            veths = [v for v in (common.host_veth_name(container_id, i) for i in ("eth0", "net1", "net2"))
                     if v in node_links]
            held = [p.name for p, text in reservations.items() if container_id in text]
            cache = self.cni_dir / "cache" / f"{container_id}-eth0.json"
            if extra or veths or held or cache.exists():
                found.append(
                    f"{name} ({container_id}): pod links {extra}, host veths {veths}, IPs {held}, "
                    f"cache {cache.read_text()[:2000] if cache.exists() else 'none'}"
                )
        return found

    def close(self) -> None:
        self.stop_daemon()
        self.api.close()


def _timed_process(argv: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, int, Any, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    out = proc.stdout.read()
    proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    for stream in (proc.stdout, proc.stderr):
        stream.close()
    doc = json.loads(out) if out.strip() else None
    return elapsed, proc.returncode, doc, usage.ru_maxrss


def _inside(node: str, scratch: Path, *, rounds: int) -> int:
    sys.path.insert(0, str(REPO))  # tests.kube.apidouble
    bench = Bench(node, scratch)
    figures: dict[str, Any] = {"rounds": rounds, "when": datetime.datetime.now(datetime.UTC).isoformat()}
    try:
        figures["install_seconds"] = bench.install()
        figures["floor"] = _floor(bench, rounds)
        figures["thin"] = _latency(bench, rounds, daemon=False)
        bench.start_daemon()
        figures["daemon"] = _latency(bench, rounds, daemon=True)
        figures["daemon_dev_venv"] = _latency(bench, rounds, daemon=True, launcher=NETPLEX)
        figures["per_network"] = _per_network(bench, rounds)
        figures["shim_overhead_ms"] = _shim_overhead(bench, rounds)
        figures["throughput"] = {
            "thin": _throughput(bench, daemon=False),
            "daemon": _throughput(bench, daemon=True),
        }
        assert bench.daemon is not None
        figures["daemon_rss_mib"] = _rss_mib(bench.daemon.pid)
    finally:
        bench.close()
    _report(figures)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps(figures, indent=1))
    print(f"\nfigures: {path}")
    failures = figures["throughput"]["thin"]["failures"] + figures["throughput"]["daemon"]["failures"]
    return 1 if failures or figures["throughput"]["thin"]["leaks"] or figures["throughput"]["daemon"]["leaks"] else 0


def _floor(bench: Bench, rounds: int) -> dict[str, Any]:
    from bench import floor
    from delegates.netlink import netns

    nets = [
        floor.Net("eth0", "bridge", "npbfc0", "10.110.0.0/16", gateway="10.110.0.1"),
        floor.Net("net1", "bridge", "npbfb0", "10.111.0.0/16"),
        floor.Net("net2", "bridge", "npbfg0", "10.112.0.0/16"),
        floor.Net("net3", "macvlan", bench.uplink, "10.113.0.0/16"),
    ]
    floor.ensure_bridges(nets)
    adds, dels, grouped_adds, grouped_dels, raw_adds, raw_dels = [], [], [], [], [], []
    for index in range(rounds + WARMUP):
        path = netns.create(f"npbench-{bench.tag}-f{index}")
        try:
            add = floor.add(nets, pod=index, netns_path=path)
            delete = floor.delete_one_by_one(nets, pod=index, netns_path=path)
            grouped_add = floor.add(nets, pod=index, netns_path=path, group=floor.GROUP)
            grouped_delete = floor.delete_group(netns_path=path)
            raw_add = floor.add_raw(nets, pod=index, netns_path=path, group=floor.GROUP)
            raw_delete = floor.delete_group_raw(netns_path=path)
        finally:
            netns.remove(os.path.basename(path))
        if index >= WARMUP:
            adds.append(add)
            dels.append(delete)
            grouped_adds.append(grouped_add)
            grouped_dels.append(grouped_delete)
            raw_adds.append(raw_add)
            raw_dels.append(raw_delete)
    return {"add": _stats(adds), "del": _stats(dels), "add_grouped": _stats(grouped_adds),
            "del_grouped": _stats(grouped_dels), "add_kernel": _stats(raw_adds), "del_kernel": _stats(raw_dels)}


def _latency(bench: Bench, rounds: int, *, daemon: bool, launcher: str = "") -> dict[str, Any]:
    adds, dels, rss, api_reads, api_writes, events, cpu = [], [], [], [], [], [], []
    for index in range(rounds + WARMUP):
        pod = bench.new_pod()
        if daemon:
            bench.sync()  # the pod is in the watch cache, as it is when kubelet calls
        bench.api.clear_requests()
        cpu_before = bench.daemon_cpu()
        add_s, add_rc, add_doc, add_rss = bench.call("ADD", daemon=daemon, pod=pod, launcher=launcher)
        cpu.append(bench.daemon_cpu() - cpu_before)
        requests = [r for r in bench.api.requests if r.query.get("watch", [""])[0] not in ("1", "true")]
        if add_rc != 0:
            raise RuntimeError(f"ADD failed: {add_doc}")
        del_s, del_rc, del_doc, _ = bench.call("DEL", daemon=daemon, pod=pod, launcher=launcher)
        if del_rc != 0:
            raise RuntimeError(f"DEL failed: {del_doc}")
        if index >= WARMUP:
            adds.append(add_s)
            dels.append(del_s)
            rss.append(add_rss)
            api_reads.append(sum(1 for r in requests if r.method == "GET"))
            # Pod events (AddedInterface, posted off the ADD's path as Multus posts them) apart.
            api_writes.append(sum(1 for r in requests if r.method != "GET" and not r.path.endswith("/events")))
            events.append(sum(1 for r in requests if r.method == "POST" and r.path.endswith("/events")))
    return {
        "add": _stats(adds), "del": _stats(dels), "process_peak_rss_mib": max(rss) / 1024,
        "api_reads_per_add": statistics.mean(api_reads), "api_writes_per_add": statistics.mean(api_writes),
        "events_per_add": statistics.mean(events),
        "daemon_cpu_ms_per_add": statistics.median(cpu[WARMUP:]) * 1000 if daemon else 0.0,
    }


def _per_network(bench: Bench, rounds: int) -> dict[str, Any]:
    """Daemon ADD latency of a pod with 1, 3 and 6 networks besides the cluster network."""
    found: dict[str, Any] = {}
    for count in PER_NETWORK_COUNTS:
        adds = []
        for index in range(rounds + WARMUP):
            pod = bench.new_pod(",".join(EXTRA_NETWORKS[:count]))
            bench.sync()
            add_s, add_rc, add_doc, _ = bench.call("ADD", daemon=True, pod=pod)
            if add_rc != 0:
                raise RuntimeError(f"ADD failed: {add_doc}")
            _, del_rc, del_doc, _ = bench.call("DEL", daemon=True, pod=pod)
            if del_rc != 0:
                raise RuntimeError(f"DEL failed: {del_doc}")
            if index >= WARMUP:
                adds.append(add_s)
        found[str(count)] = _stats(adds)
    low, high = PER_NETWORK_COUNTS[0], PER_NETWORK_COUNTS[-1]
    found["ms_per_network"] = (found[str(high)]["median_ms"] - found[str(low)]["median_ms"]) / (high - low)
    return found


def _shim_overhead(bench: Bench, rounds: int) -> dict[str, float]:
    """STATUS through the shim the runtime execs (the installed launcher): start,
    connect, a trivial answer; beside a bare start of the same interpreter."""
    conf = {**bench.conf(daemon=True), "cniVersion": "1.1.0"}
    env = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": "STATUS", "CNI_PATH": str(Path(NETPLEX).parent)}
    times = []
    bare = []
    for index in range(rounds + WARMUP):
        elapsed, code, doc, _ = _timed_process([bench.launcher], json.dumps(conf).encode(), env)
        if code != 0:
            raise RuntimeError(f"STATUS failed: {doc}")
        start_only, _, _, _ = _timed_process([bench.release_python, "-I", "-S", "-c", "pass"], b"", env)
        if index >= WARMUP:
            times.append(elapsed)
            bare.append(start_only)
    return {"status_round_trip": statistics.median(times) * 1000, "python_start": statistics.median(bare) * 1000}


def _throughput(bench: Bench, *, daemon: bool) -> dict[str, Any]:
    pods = [bench.new_pod() for _ in range(THROUGHPUT_PODS)]
    if daemon:
        bench.sync()
    results: dict[str, Any] = {}
    with concurrent.futures.ThreadPoolExecutor(THROUGHPUT_PODS) as pool:
        for command in ("ADD", "DEL"):
            cpu_before = bench.daemon_cpu()
            started = time.perf_counter()
            answers = list(pool.map(lambda pod, c=command: bench.call(c, daemon=daemon, pod=pod), pods))
            elapsed = time.perf_counter() - started
            cpu_ms = (bench.daemon_cpu() - cpu_before) * 1000 / len(pods)
            failures = [doc for _, code, doc, _ in answers if code != 0]
            results[command] = {"seconds": elapsed, "pods_per_s": len(pods) / elapsed, "failures": len(failures),
                                "daemon_cpu_ms_per_pod": cpu_ms}
            if failures:
                results[command]["first_failure"] = failures[0]
    results["failures"] = results["ADD"]["failures"] + results["DEL"]["failures"]
    leftovers = bench.leftovers(pods)
    results["leaks"] = leftovers
    return results


def _rss_mib(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return {"now": values.get("VmRSS", 0.0), "peak": values.get("VmHWM", 0.0)}


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median_ms": statistics.median(ordered) * 1000, "p90_ms": p90 * 1000, "n": len(ordered)}


def _report(figures: dict[str, Any]) -> None:
    print(table(figures))


def table(figures: dict[str, Any]) -> str:
    """The results table (markdown) with every figure as a ratio to the floor."""
    floor_add = figures["floor"]["add"]["median_ms"]
    floor_del = figures["floor"]["del"]["median_ms"]
    lines = [
        f"netplex bench: pod with a cluster network + 3 NADs (bridge, bridge, macvlan); "
        f"{figures['rounds']} rounds per mode; {os.cpu_count()} CPUs; {_kernel()}; the runtime execs the "
        f"launcher of a release `netplex install` built (in {figures.get('install_seconds', 0):.0f} s)",
        "",
        "| what | median ms | p90 ms | median / floor |",
        "|---|---:|---:|---:|",
    ]

    def row(name: str, stats: dict[str, float], base: float) -> None:
        median, p90 = stats["median_ms"], stats["p90_ms"]
        lines.append(f"| {name} | {median:.1f} | {p90:.1f} | {median / base:.2f}x |")

    row("floor ADD (pyroute2, one process)", figures["floor"]["add"], floor_add)
    row("kernel floor ADD (raw netlink messages)", figures["floor"]["add_kernel"], floor_add)
    row("floor DEL, one link at a time", figures["floor"]["del"], floor_del)
    row("floor DEL, one interface-group batch", figures["floor"]["del_grouped"], floor_del)
    row("kernel floor DEL, group (raw message)", figures["floor"]["del_kernel"], floor_del)
    row("thin ADD", figures["thin"]["add"], floor_add)
    row("thin DEL", figures["thin"]["del"], floor_del)
    row("daemon ADD (shim + daemon)", figures["daemon"]["add"], floor_add)
    row("daemon DEL (shim + daemon, by group)", figures["daemon"]["del"], floor_del)
    if "daemon_dev_venv" in figures:
        row("daemon ADD, development venv's console script", figures["daemon_dev_venv"]["add"], floor_add)
    per = figures["per_network"]
    for count in PER_NETWORK_COUNTS:
        row(f"daemon ADD, cluster network + {count} more", per[str(count)], floor_add)
    shim = figures["shim_overhead_ms"]
    rss = figures["daemon_rss_mib"]
    lines += [
        "",
        "| what | thin | daemon |",
        "|---|---:|---:|",
        f"| ADD throughput, {THROUGHPUT_PODS} pods at once (pods/s) | "
        f"{figures['throughput']['thin']['ADD']['pods_per_s']:.1f} | "
        f"{figures['throughput']['daemon']['ADD']['pods_per_s']:.1f} |",
        f"| DEL throughput, {THROUGHPUT_PODS} pods at once (pods/s) | "
        f"{figures['throughput']['thin']['DEL']['pods_per_s']:.1f} | "
        f"{figures['throughput']['daemon']['DEL']['pods_per_s']:.1f} |",
        f"| failures / leaks after the throughput run | {figures['throughput']['thin']['failures']} / "
        f"{len(figures['throughput']['thin']['leaks'])} | {figures['throughput']['daemon']['failures']} / "
        f"{len(figures['throughput']['daemon']['leaks'])} |",
        f"| API requests per ADD: reads + writes | {figures['thin']['api_reads_per_add']:.0f} + "
        f"{figures['thin']['api_writes_per_add']:.0f} | {figures['daemon']['api_reads_per_add']:.0f} + "
        f"{figures['daemon']['api_writes_per_add']:.0f} |",
        f"| pod events posted per ADD (asynchronous, AddedInterface) | {figures['thin']['events_per_add']:.1f} | "
        f"{figures['daemon']['events_per_add']:.1f} |",
        f"| peak RSS of the process the runtime execs (MiB) | {figures['thin']['process_peak_rss_mib']:.1f} | "
        f"{figures['daemon']['process_peak_rss_mib']:.1f} (shim) |",
        f"| daemon peak RSS after {THROUGHPUT_PODS} pods in flight (MiB) | - | {rss['peak']:.1f} |",
        f"| daemon CPU per ADD, one at a time / {THROUGHPUT_PODS} at once (ms) | - | "
        f"{figures['daemon']['daemon_cpu_ms_per_add']:.1f} / "
        f"{figures['throughput']['daemon']['ADD']['daemon_cpu_ms_per_pod']:.1f} |",
        "",
        f"each network beyond the first costs a daemon ADD {per['ms_per_network']:.1f} ms "
        f"(from {PER_NETWORK_COUNTS[0]} to {PER_NETWORK_COUNTS[-1]} extra networks)",
        "",
        f"shim overhead: a STATUS round trip through the installed launcher takes {shim['status_round_trip']:.1f} ms "
        f"(of which {shim['python_start']:.1f} ms is a bare start of the release's `python -I -S`)",
        "",
        "targets (reported, not asserted):",
    ]
    checks = {
        "daemon ADD / floor ADD": figures["daemon"]["add"]["median_ms"] / floor_add,
        "daemon DEL / floor DEL (one by one)": figures["daemon"]["del"]["median_ms"] / floor_del,
        "thin ADD / floor ADD": figures["thin"]["add"]["median_ms"] / floor_add,
        "shim overhead ms": shim["status_round_trip"],
        "daemon CPU ms per ADD (20 pods at once)": figures["throughput"]["daemon"]["ADD"]["daemon_cpu_ms_per_pod"],
        "daemon peak RSS MiB": rss["peak"],
        "daemon API requests per ADD": figures["daemon"]["api_reads_per_add"] + figures["daemon"]["api_writes_per_add"],
    }
    for name, value in checks.items():
        target = TARGETS[name]
        verdict = "met" if value <= target else "MISSED"
        lines.append(f"- {name}: {value:.2f} (target <= {target:g}): {verdict}")
    pods_per_s = figures["throughput"]["daemon"]["ADD"]["pods_per_s"]
    verdict = "met" if pods_per_s >= THROUGHPUT_TARGET else "MISSED"
    lines.append(f"- daemon ADD throughput pods/s: {pods_per_s:.1f} (target >= {THROUGHPUT_TARGET:g}): {verdict}")
    for mode in ("thin", "daemon"):
        leaks = figures["throughput"][mode]["leaks"]
        if leaks:
            lines.append(f"- LEAKS in {mode} mode: {leaks}")
    return "\n".join(lines)


def _kernel() -> str:
    return f"Linux {os.uname().release}"


if __name__ == "__main__":
    sys.exit(main())
