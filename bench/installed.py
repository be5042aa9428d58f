"""`python -m bench.installed`: the daemon-mode shim's overhead through an INSTALLED
launcher, as a node runs it: `netplex install` builds a release (its own interpreter,
standard library and libraries) into a scratch directory, a `netplex daemon` serves on a
scratch socket (local mode, no Kubernetes), and the runtime's side is the launcher in the
scratch CNI bin dir, started from an empty environment.

Measured, alternating per round so load on the machine hits all alike:
- floor: the release's interpreter, `python3.11 -I -S -c pass` (a bare start);
- installed shim STATUS: the launcher, `CNI_COMMAND=STATUS`, config with `daemonSocket`
  (start, the shim's imports, connect, the daemon's answer);
- daemon STATUS: the same request sent by this process over the socket (no start);
- dev shim STATUS: the development venv's `netplex` console script, for comparison.

Shim overhead = installed shim STATUS minus daemon STATUS (what the shim adds to every
call). Wall time on a busy machine mostly measures the other jobs, so the CPU time of
each started process (user + system, from getrusage of the children) is reported too.
No root needed; nothing outside the scratch directory is touched. The table goes
to stdout, the figures as JSON to bench/results/. The target (< 15 ms) is reported, never
asserted."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meta import shim

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
NETPLEX = str(Path(sys.executable).with_name("netplex"))
ROUNDS = 30
# STATUS exists from CNI 1.1.0 on: the primary uses it, so the conflist does too.
WARMUP = 3
TARGET_MS = 15.0
PRIMARY = {"cniVersion": "1.1.0", "name": "podnet", "plugins": [{"type": "bridge", "bridge": "bench0"}]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.installed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="netplex-bench-installed-") as scratch:
        figures = measure(Path(scratch), rounds=options.rounds)
    print(table(figures))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"installed-{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(figures, indent=1))
    print(f"figures: {path}")
    return 0


def build_release(scratch: Path, *, socket_path: str) -> tuple[Path, float]:
    """`netplex install --once` into `scratch` as the DaemonSet's init container does on a
    node: the launchers in scratch/bin, the conflist in scratch/net.d (beside a primary),
    the release (own interpreter and libraries) under scratch/lib. Returns the release
    directory and the seconds the build took."""
    bin_dir, conf_dir, lib_dir = scratch / "bin", scratch / "net.d", scratch / "lib"
    for directory in (bin_dir, conf_dir):
        directory.mkdir(exist_ok=True)
    (conf_dir / "10-podnet.conflist").write_text(json.dumps(PRIMARY))
    started = time.monotonic()
    subprocess.run(
        [NETPLEX, "install", "--once", "--host-root=/", f"--cni-bin-dir={bin_dir}", f"--cni-conf-dir={conf_dir}",
         f"--lib-dir={lib_dir}", "--kubeconfig-out=none", f"--daemon-socket={socket_path}"],
        check=True, capture_output=True, timeout=900,
    )
    [release] = (lib_dir / "releases").iterdir()
    return release, time.monotonic() - started


def measure(scratch: Path, *, rounds: int) -> dict[str, Any]:
    bin_dir, conf_dir = scratch / "bin", scratch / "net.d"
    (scratch / "networks").mkdir()
    release, install_seconds = build_release(scratch, socket_path=str(scratch / "netplex.sock"))
    python = release / "runtime" / "bin" / "python3.11"
    conflist = json.loads((conf_dir / "00-netplex.conflist").read_text())
    [entry] = conflist["plugins"]
    conf = {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **entry,
            "localNetworks": str(scratch / "networks"), "cniDir": str(scratch / "cni")}
    stdin = json.dumps(conf).encode()
    env = {"CNI_COMMAND": "STATUS", "CNI_PATH": str(bin_dir)}
    daemon = _start_daemon(scratch, conf["daemonSocket"])
    try:
        client = shim.Client(conf["daemonSocket"], timeout=10)
        request = {"env": env, "config": conf}

        def in_process() -> None:
            code, output = client.cni(request)
            if code != 0:
                raise RuntimeError(f"STATUS failed: {output}")

        cases: dict[str, Callable[[], None]] = {
            "floor: release python -I -S -c pass": lambda: _run([str(python), "-I", "-S", "-c", "pass"], {}, b""),
            "installed shim STATUS": lambda: _run([str(bin_dir / "netplex")], env, stdin),
            "daemon STATUS (in-process client)": in_process,
            "dev venv shim STATUS": lambda: _run([NETPLEX], {**env, "PATH": os.defpath}, stdin),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for index in range(rounds + WARMUP):
            for name, case in cases.items():
                before = _children_cpu()
                began = time.perf_counter()
                case()
                if index >= WARMUP:
                    samples[name].append((time.perf_counter() - began) * 1000)
                    cpu[name].append((_children_cpu() - before) * 1000)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    p90 = {name: sorted(values)[int(0.9 * (len(values) - 1))] for name, values in samples.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    overhead = medians["installed shim STATUS"] - medians["daemon STATUS (in-process client)"]
    return {
        "rounds": rounds, "install_seconds": install_seconds, "release_bytes": _size(release),
        "runtime_bytes": _size(release / "runtime"), "median_ms": medians, "p90_ms": p90,
        "median_cpu_ms": cpu_medians, "shim_cpu_ms": cpu_medians["installed shim STATUS"],
        "shim_overhead_ms": overhead, "target_ms": TARGET_MS, "python": sys.version.split()[0],
    }


def table(figures: dict[str, Any]) -> str:
    floor = figures["median_ms"]["floor: release python -I -S -c pass"]
    lines = ["| what | median ms | p90 ms | median / floor | CPU ms (the process started) |",
             "|---|---:|---:|---:|---:|"]
    for name, median in figures["median_ms"].items():
        spent = figures["median_cpu_ms"][name]
        lines.append(f"| {name} | {median:.1f} | {figures['p90_ms'][name]:.1f} | {median / floor:.2f}x | "
                     f"{spent:.1f} |" if spent else f"| {name} | {median:.1f} | {figures['p90_ms'][name]:.1f} | "
                     f"{median / floor:.2f}x | - |")
    verdict = "met" if figures["shim_overhead_ms"] < figures["target_ms"] else "**missed**"
    lines.append("")
    lines.append(f"shim overhead through the installed launcher: {figures['shim_overhead_ms']:.1f} ms "
                 f"(target < {figures['target_ms']:g} ms: {verdict}); the shim process's CPU time "
                 f"{figures['shim_cpu_ms']:.1f} ms; release {figures['release_bytes'] / 1e6:.0f} MB "
                 f"(runtime {figures['runtime_bytes'] / 1e6:.0f} MB), built in {figures['install_seconds']:.1f} s")
    return "\n".join(lines)


def _start_daemon(scratch: Path, socket_path: str) -> subprocess.Popen[bytes]:
    config = scratch / "daemon.json"
    config.write_text(json.dumps({"socketPath": socket_path, "logLevel": "warning"}))
    proc = subprocess.Popen([sys.executable, "-m", "meta.daemon", "--config", str(config)], cwd=str(REPO),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not shim.Client(socket_path, timeout=5).wait_ready(60):
        proc.kill()
        raise RuntimeError("the daemon did not become ready")
    return proc


def _run(command: list[str], env: dict[str, str], stdin: bytes) -> None:
    answer = subprocess.run(command, input=stdin, env=env, capture_output=True, timeout=60, check=False)
    if answer.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {answer.stdout!r} {answer.stderr!r}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


if __name__ == "__main__":
    sys.exit(main())
