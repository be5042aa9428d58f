"""`python -m tools.vm.run [OPTIONS] -- CMD ARGS...`: run CMD as root under a real kernel in QEMU.

Boots Debian's stock kernel (fetched once into `.cache/vm/`) with the host's "/" shared
read-only over 9p beneath a throwaway tmpfs overlay, so CMD sees this machine's files,
venv and checkout at the same paths, can write anywhere, and leaves no trace. CMD runs
in the caller's directory with a clean environment: PATH, HOME=/root, TERM=dumb,
NETPLEX_IN_VM=1, COLUMNS, CI when set, plus any `--env`. Its output is streamed live to
stdout; the runner's own notes go to stderr, prefixed "netplex-vm:".

Exit status: CMD's own; 124 if `--timeout` expired (qemu killed); 125 if the runner could
not start the VM or the VM stopped without reporting a status (the serial console's tail
is printed); 130 on Ctrl-C, 143 on SIGTERM (qemu killed either way).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.vm import initramfs, kernel, qemu
from tools.vm.console import Console

EXIT_TIMEOUT = 124
EXIT_VM_FAILED = 125
EXIT_INTERRUPTED = 130
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "vm"
STANDARD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
PASSTHROUGH = ("CI",)
SHUTDOWN_GRACE = 10.0  # seconds qemu gets to exit after the guest reported a status


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    qemu_binary = shutil.which("qemu-system-x86_64")
    if qemu_binary is None:
        _note("qemu-system-x86_64 not found; install qemu-system-x86 (scripts/setup.sh does)")
        return EXIT_VM_FAILED
    try:
        busybox = initramfs.find_busybox()
        guest_kernel = kernel.ensure_kernel(args.cache_dir.resolve())
    except (kernel.KernelError, initramfs.InitramfsError) as exc:
        _note(str(exc))
        return EXIT_VM_FAILED
    nonce = secrets.token_hex(8)
    job = initramfs.Job(
        argv=tuple(args.command),
        cwd=os.getcwd(),
        env=guest_env(os.environ, args.env, columns=shutil.get_terminal_size().columns),
    )
    with tempfile.TemporaryDirectory(prefix="netplex-vm-") as tmp:
        initrd = Path(tmp, "initramfs.cpio")
        try:
            initrd.write_bytes(initramfs.build(guest_kernel, job, nonce=nonce, busybox=busybox))
        except (initramfs.InitramfsError, LookupError) as exc:
            _note(f"cannot build the initramfs: {exc}")
            return EXIT_VM_FAILED
        accel = qemu.choose_accel(args.accel)
        command = qemu.command(
            guest_kernel, initrd, accel=accel, memory=args.memory, cpus=args.cpus, qemu=qemu_binary, nics=args.nics
        )
        _note(f"booting {guest_kernel.release} ({accel}, {args.cpus} cpu, {args.memory}, {args.nics} hub NICs)")
        signal.signal(signal.SIGTERM, _terminated)  # unwind, so qemu is killed on the way out
        return boot(command, Console(nonce), timeout=args.timeout)


def boot(command: list[str], console: Console, *, timeout: float) -> int:
    """Run qemu, stream the job's output to stdout, and return the exit status (see module doc)."""
    began = time.monotonic()
    deadline = began + timeout
    started_at: float | None = None
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    stream = proc.stdout.fileno()
    out = sys.stdout.buffer
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _stop(proc)
                if console.status is not None:
                    break  # the job finished; only the shutdown hung
                _note(f"timed out after {timeout:g} s; killed qemu")
                _show_tail(console)
                return EXIT_TIMEOUT
            ready, _, _ = select.select([stream], [], [], remaining)
            if not ready:
                continue
            data = os.read(stream, 65536)
            if not data:
                break  # qemu exited
            shown = console.feed(data)
            if shown:
                out.write(shown)
                out.flush()
            if console.started and started_at is None:
                started_at = time.monotonic()
            if console.status is not None:
                deadline = min(deadline, time.monotonic() + SHUTDOWN_GRACE)
        _stop(proc, grace=SHUTDOWN_GRACE)  # qemu closed the console: it is exiting
    except KeyboardInterrupt:
        _stop(proc)
        _note("interrupted; killed qemu")
        return EXIT_INTERRUPTED
    finally:
        _stop(proc)
        proc.stdout.close()
    qemu_status = proc.returncode
    if console.status is None:
        _note(f"the VM stopped without reporting the command's status (qemu exited {qemu_status})")
        _show_tail(console)
        return EXIT_VM_FAILED
    boot_time = f"{started_at - began:.1f}" if started_at is not None else "?"
    _note(f"command exited {console.status} after {time.monotonic() - began:.1f} s (boot {boot_time} s)")
    return console.status


def guest_env(host: Mapping[str, str], extra: Sequence[str], *, columns: int) -> dict[str, str]:
    """The job's whole environment: fixed values, PATH (plus sbin dirs), CI, and `--env` items.

    An `--env NAME` without a value copies the host's, and is left out if the host has none.
    """
    path = host.get("PATH", "").split(":") if host.get("PATH") else []
    path += [entry for entry in STANDARD_PATH if entry not in path]  # root's tools, e.g. ip
    env = {
        "PATH": ":".join(path),
        "HOME": "/root",
        "TERM": "dumb",  # a serial console: no colours, no cursor tricks
        "LANG": "C.UTF-8",
        "COLUMNS": str(columns),
        "NETPLEX_IN_VM": "1",
    }
    env.update({name: host[name] for name in PASSTHROUGH if name in host})
    for item in extra:
        name, sep, value = item.partition("=")
        if sep:
            env[name] = value
        elif name in host:
            env[name] = host[name]
    return env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.vm.run",
        description="Run a command as root under Debian's kernel in QEMU, over this machine's files.",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for boot and command (900)")
    parser.add_argument("--memory", default="1G", help="guest memory, qemu syntax (1G)")
    parser.add_argument("--cpus", type=int, default=2, help="guest CPUs (2)")
    parser.add_argument(
        "--accel", choices=("auto", "kvm", "tcg"), default="auto", help="auto: kvm only with kvm_intel/kvm_amd loaded"
    )
    parser.add_argument(
        "--nics", type=int, choices=range(9), default=3, metavar="N",
        help="virtio-net PCI NICs on a QEMU-internal hub, reaching nothing outside (3; 0-8)",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME[=VALUE]", help="add to the job's environment"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("NETPLEX_VM_CACHE", DEFAULT_CACHE)),
        help="where the kernel is cached ($NETPLEX_VM_CACHE, else .cache/vm)",
    )
    parser.add_argument("command", nargs="+", help="the command to run, after --")
    return parser


def _stop(proc: subprocess.Popen[bytes], *, grace: float = 0.0) -> None:
    """Reap qemu, killing its whole process group if it has not exited within `grace` seconds."""
    try:
        proc.wait(timeout=grace)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _show_tail(console: Console) -> None:
    where = "the job had started" if console.started else "the job never started"
    _note(f"last lines of the serial console ({where}):")
    for line in console.tail().splitlines() or ["(nothing)"]:
        print(f"  | {line}", file=sys.stderr)
    sys.stderr.flush()


def _note(message: str) -> None:
    print(f"netplex-vm: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
