"""Leaving the machine as the lanes found it: mounts, cgroups, processes and the few
fixed host paths a runtime insists on (`/run/containerd/s` for shim sockets, say).

Every function here touches only what a lane made: mounts under its own work directory,
cgroups under its own parent, processes in those cgroups or naming its work directory,
and host directories that did not exist before the lane started (`Residue`).

Standard library only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Host paths containerd 1.6 and podman 4.3 create whatever their config says.
RUNTIME_PATHS = (
    "/run/containerd/s", "/run/containerd", "/run/runc", "/var/lib/containers/cache", "/var/lib/containers",
)


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, deepest first (from /proc/self/mountinfo)."""
    prefix = str(directory.resolve())
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            point = _unescape(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda point: point.count("/"), reverse=True)


def unmount_under(directory: Path) -> None:
    """Lazily unmount everything mounted below `directory` (overlay rootfs, netns binds)."""
    for point in mounts_under(directory):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def cgroup_dirs(parent: str) -> list[Path]:
    """`parent` (such as `/nprt-1a2b3c`) in every mounted cgroup hierarchy that has it."""
    relative = parent.strip("/")
    if not relative:
        raise ValueError("refusing the root cgroup")
    found = []
    for hierarchy in sorted(CGROUP_ROOT.iterdir()) if CGROUP_ROOT.is_dir() else []:
        candidate = hierarchy / relative
        if candidate.is_dir():
            found.append(candidate)
    if (CGROUP_ROOT / "cgroup.procs").exists() and (CGROUP_ROOT / relative).is_dir():
        found.append(CGROUP_ROOT / relative)  # a pure cgroup v2 mount
    return found


def cgroup_pids(parent: str) -> set[int]:
    """Every process in the cgroup trees of `parent`."""
    pids: set[int] = set()
    for top in cgroup_dirs(parent):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in procs.read_text().split())
    return pids


def remove_cgroups(parent: str) -> None:
    """Remove the (emptied) cgroup trees of `parent`, deepest first."""
    for top in cgroup_dirs(parent):
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def pids_naming(text: str) -> set[int]:
    """Processes whose command line contains `text` (a lane's work directory)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.add(int(entry.name))
    return found


def kill(pids: Iterable[int], *, wait: float = 5.0) -> None:
    """SIGKILL each of `pids` (processes a lane started) and wait for them to go."""
    remaining = set(pids)
    for pid in remaining:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while remaining and time.monotonic() < deadline:
        remaining = {pid for pid in remaining if Path(f"/proc/{pid}").exists() and not _is_zombie(pid)}
        time.sleep(0.05)


@dataclasses.dataclass(frozen=True)
class Residue:
    """Which of `paths` existed before a lane; `remove_new` removes the others."""

    existed: frozenset[str]
    paths: tuple[str, ...] = RUNTIME_PATHS

    @classmethod
    def snapshot(cls, paths: tuple[str, ...] = RUNTIME_PATHS) -> Residue:
        return cls(existed=frozenset(p for p in paths if os.path.lexists(p)), paths=paths)

    def new_paths(self) -> list[str]:
        return [p for p in self.paths if p not in self.existed and os.path.lexists(p)]

    def remove_new(self) -> None:
        """Remove each path that appeared during the lane, with what it holds (the
        runtime made it: nothing else on a lane's machine writes there)."""
        for path in sorted(self.new_paths(), key=len, reverse=True):
            shutil.rmtree(path, ignore_errors=True)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (`\\040`)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field
