"""The guest's initramfs: static busybox, the few modules needed to reach the host's root, init.

Debian's kernel has virtio_pci, 9p, overlay and virtio_net as modules, so the initramfs carries them
(with their dependencies, in load order) next to `init.sh`. It also carries the job: a
`netplex.env` of shell assignments that `init.sh` sources, and a `job.sh` that enters the
caller's directory and execs the command with a clean environment. Built fresh per run,
in memory; the only files read are busybox, `init.sh` and the kernel's module tree.
"""

from __future__ import annotations

import dataclasses
import lzma
import posixpath
import shlex
from collections.abc import Mapping
from pathlib import Path

from tools.vm import cpio, elf, modules
from tools.vm.kernel import Kernel

ROOT_TAG = "hostroot"  # the 9p mount tag qemu exports the host's "/" under
NINEP_CACHE = "loose"  # the share is read-only and the host tree is not meant to change under a run
NINEP_MSIZE = 512000
# virtio_net: the driver of the extra NICs (no udev in the guest to load it on demand)
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_net")
INIT_SCRIPT = Path(__file__).with_name("init.sh")
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


class InitramfsError(Exception):
    """Something the initramfs needs is missing or unusable; the message names it."""


@dataclasses.dataclass(frozen=True)
class Job:
    """What the guest runs: `argv` in directory `cwd` with exactly the environment `env`."""

    argv: tuple[str, ...]
    cwd: str
    env: Mapping[str, str]


def build(kernel: Kernel, job: Job, *, nonce: str, busybox: Path) -> bytes:
    """The initramfs (an uncompressed newc archive) that boots `kernel` into running `job`."""
    box = busybox.read_bytes()
    if not elf.is_static(box):
        raise InitramfsError(f"{busybox} is dynamically linked; install busybox-static")
    order = modules.load_order(
        modules.parse_dep((kernel.modules / "modules.dep").read_text()),
        BOOT_MODULES,
        builtin=modules.parse_builtin((kernel.modules / "modules.builtin").read_text()),
    )
    entries = [
        cpio.directory("bin"),
        cpio.directory("dev"),
        cpio.char_device("dev/console", 5, 1),
        cpio.directory("modules"),
        cpio.regular("bin/busybox", box, 0o755),
        cpio.symlink("bin/sh", "busybox"),
        cpio.regular("init", INIT_SCRIPT.read_bytes(), 0o755),
        cpio.regular("job.sh", job_script(job).encode(), 0o755),
    ]
    names = []
    for path in order:
        name = f"{modules.module_name(path)}.ko"
        entries.append(cpio.regular(f"modules/{name}", _module_bytes(kernel.modules / path)))
        names.append(name)
    settings = {
        "NETPLEX_KVER": kernel.release,
        "NETPLEX_MODULE_TREE": str(kernel.modules.resolve()),
        "NETPLEX_MODULES": " ".join(names),
        "NETPLEX_NONCE": nonce,
        "NETPLEX_9P_TAG": ROOT_TAG,
        "NETPLEX_9P_CACHE": NINEP_CACHE,
        "NETPLEX_9P_MSIZE": str(NINEP_MSIZE),
        "NETPLEX_TMPFS_TMP": "1" if tmp_is_free(job) else "0",
    }
    entries.append(cpio.regular("netplex.env", env_file(settings).encode()))
    return cpio.archive(entries)


def find_busybox() -> Path:
    """The host's busybox binary (Debian's busybox-static puts it at /bin/busybox)."""
    for candidate in map(Path, BUSYBOX_CANDIDATES):
        if candidate.is_file():
            return candidate
    raise InitramfsError("busybox not found; install busybox-static")


def job_script(job: Job) -> str:
    """`job.sh`: enter `cwd` (126 if it is missing), then exec `argv` with only `env`.

    The host's coreutils `env` does the exec: busybox's own would run its applets (`sh`,
    `ip`, `ls`) in place of the host's programs of the same name.
    """
    assignments = " ".join(shlex.quote(f"{name}={value}") for name, value in sorted(job.env.items()))
    command = shlex.join(job.argv)
    return f"cd -- {shlex.quote(job.cwd)} || exit 126\nexec /usr/bin/env -i -- {assignments} {command}\n"


def env_file(settings: Mapping[str, str]) -> str:
    """Shell assignments `init.sh` sources, one a line, quoted."""
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in settings.items())


def tmp_is_free(job: Job) -> bool:
    """Whether a fresh tmpfs may cover /tmp: not when the job's directory or a path argument lies there.

    CI may clone the repository under /tmp; the overlay root keeps that visible (and
    writable, throwaway) as long as nothing is mounted over it.
    """
    paths = [job.cwd, *(arg for arg in job.argv if arg.startswith("/"))]
    return not any(_is_under(path, "/tmp") for path in paths)


def _module_bytes(path: Path) -> bytes:
    # busybox insmod hands the bytes to init_module(2), which wants them uncompressed
    if path.name.endswith(".ko"):
        return path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    raise InitramfsError(f"cannot unpack module {path.name!r}: only .ko and .ko.xz are supported")


def _is_under(path: str, top: str) -> bool:
    normal = posixpath.normpath(path)
    return normal == top or normal.startswith(top + "/")
