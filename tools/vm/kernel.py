"""The guest kernel: Debian's stock `linux-image-amd64`, fetched once and cached unpacked.

The kernel package is never installed on the host (that would pull in initramfs-tools and
udev): `apt-get download` fetches the concrete `linux-image-KVER` .deb, `dpkg-deb -x`
unpacks it, `depmod -b` writes the `modules.dep` the .deb does not ship, and the
uncompressed `boot/vmlinux-KVER` is extracted for a faster boot (see `vmlinux`). The result
lives in `CACHE/KVER/` (`boot/`, `lib/modules/KVER/`), renamed into place only when
complete; a lock file keeps two concurrent runs from fetching twice. Delete the cache to
move to a newer kernel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tools.vm import vmlinux

META_PACKAGE = "linux-image-amd64"
_PACKAGE = re.compile(r"^\s*Depends:\s*(linux-image-(\d\S*))\s*$")


class KernelError(Exception):
    """The kernel could not be found, fetched or unpacked; the message says which step."""


@dataclasses.dataclass(frozen=True)
class Kernel:
    """An unpacked kernel: its release string, the image qemu boots, its module tree."""

    release: str
    image: Path  # boot/vmlinux-KVER if extracted, else the bzImage boot/vmlinuz-KVER
    modules: Path  # .../lib/modules/KVER, with modules.dep


def ensure_kernel(cache: Path) -> Kernel:
    """A cached kernel, fetching Debian's current one into `cache` if there is none."""
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".lock"):
        cached = find_cached(cache)
        if cached is not None:
            return cached
        return fetch(cache)


def find_cached(cache: Path) -> Kernel | None:
    """The newest complete kernel under `cache`, if any (incomplete fetches are hidden dirs)."""
    found = [kernel for kernel in map(_unpacked, sorted(cache.iterdir())) if kernel is not None]
    return found[-1] if found else None


def fetch(cache: Path) -> Kernel:
    """Download, unpack and depmod the kernel `linux-image-amd64` points at, into `cache`."""
    package, release = resolve_package()
    print(f"netplex-vm: fetching {package} into {cache} (once)", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache) as tmp:
        _download(package, Path(tmp))
        debs = sorted(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            raise KernelError(f"apt-get download {package} left {len(debs)} .deb files, expected 1")
        staging = Path(tmp, "root")
        _run(["dpkg-deb", "-x", str(debs[0]), str(staging)], what=f"unpack {debs[0].name}")
        kernel = _unpacked(staging, release)
        if kernel is None:
            raise KernelError(f"{debs[0].name} holds no boot/vmlinuz-{release} and lib/modules/{release}")
        base = kernel.modules.parent.parent.parent  # depmod wants the dir holding lib/modules
        _run(["depmod", "-b", str(base), release], what=f"depmod for {release}")
        elf = vmlinux.extract(kernel.image.read_bytes())
        if elf is not None:
            kernel.image.with_name(f"vmlinux-{release}").write_bytes(elf)
        staging.rename(cache / release)
    kernel = _unpacked(cache / release, release)
    assert kernel is not None
    return kernel


def resolve_package() -> tuple[str, str]:
    """(`linux-image-KVER`, `KVER`) that the meta package depends on; updates apt lists once if needed."""
    found = parse_depends(_apt_cache_depends())
    if found is None:
        _run(["apt-get", "update", "-qq"], what="apt-get update")
        found = parse_depends(_apt_cache_depends())
    if found is None:
        raise KernelError(f"apt-cache cannot resolve {META_PACKAGE} to a kernel package")
    return found


def parse_depends(text: str) -> tuple[str, str] | None:
    """The first `Depends: linux-image-KVER` in `apt-cache depends` output, as (package, KVER)."""
    for line in text.splitlines():
        match = _PACKAGE.match(line)
        if match:
            return match.group(1), match.group(2)
    return None


def _apt_cache_depends() -> str:
    proc = subprocess.run(["apt-cache", "depends", META_PACKAGE], capture_output=True, text=True, check=False)
    return proc.stdout if proc.returncode == 0 else ""


def _download(package: str, into: Path) -> None:
    command = ["apt-get", "download", "-q"]
    if os.geteuid() == 0:
        command += ["-o", "APT::Sandbox::User=root"]  # else apt warns it cannot drop to _apt here
    try:
        _run([*command, package], what=f"apt-get download {package}", cwd=into)
    except KernelError:
        if os.geteuid() != 0:
            raise
        _run(["apt-get", "update", "-qq"], what="apt-get update")  # stale lists: the .deb moved on
        _run([*command, package], what=f"apt-get download {package}", cwd=into)


def _unpacked(root: Path, release: str | None = None) -> Kernel | None:
    """The kernel unpacked at `root` (named by `release`, default the dir's name), if complete."""
    if root.name.startswith(".") and release is None:
        return None
    release = release or root.name
    image = root / "boot" / f"vmlinux-{release}"
    if not image.is_file():
        image = image.with_name(f"vmlinuz-{release}")
    for modules in (root / "lib" / "modules" / release, root / "usr" / "lib" / "modules" / release):
        if image.is_file() and modules.is_dir():
            return Kernel(release=release, image=image, modules=modules)
    return None


def _run(command: list[str], *, what: str, cwd: Path | None = None) -> None:
    tool = shutil.which(command[0], path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")  # depmod
    if tool is None:
        raise KernelError(f"cannot {what}: {command[0]!r} is not installed")
    proc = subprocess.run([tool, *command[1:]], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise KernelError(f"cannot {what}: {command[0]} exited {proc.returncode}: {detail}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
