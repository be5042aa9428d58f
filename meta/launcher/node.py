"""The node as `netplex install` sees it: where its `/` is mounted (`HostRoot`), and
whether its own CPython can run a release built for this interpreter
(`find_node_python`). A release's compiled dependencies (msgspec, pydantic-core,
PyYAML's `_yaml`, rpds-py) are built for this interpreter's ABI, so the node needs the same
CPython minor version on the same machine type. Reads files only, except that it runs
the interpreter when the node is this machine (root `/`)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys

_MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"
# Where `--node-python auto` looks, in order (for this interpreter's version: 3.11).
PYTHON_CANDIDATES = (
    f"/usr/bin/python{_MINOR}",
    f"/usr/local/bin/python{_MINOR}",
    "/usr/bin/python3",
    "/usr/local/bin/python3",
)
_ELF_MAGIC = b"\x7fELF"
_PYTHON_NAME = re.compile(r"python(\d+)\.(\d+)$")


class InstallError(Exception):
    """A failure of `netplex install`, with a message that says what to do."""


@dataclasses.dataclass(frozen=True)
class HostRoot:
    """Where the node's `/` is as the installer sees it (`/` when installing in place)."""

    path: str

    def inside(self, node_path: str) -> str:
        """The installer's path of `node_path`."""
        return os.path.join(self.path, node_path.lstrip("/")) if self.path != "/" else node_path

    def on_node(self, path: str) -> str:
        """The node's path of the installer's `path` (which must lie under the root)."""
        absolute = os.path.abspath(path)
        root = os.path.abspath(self.path)
        if root == "/":
            return absolute
        if absolute != root and not absolute.startswith(root + "/"):
            raise InstallError(f"{path!r} is not under the host root {self.path!r}: the node could not find it")
        return "/" + os.path.relpath(absolute, root) if absolute != root else "/"


def python_version() -> str:
    """The CPython minor version the runtime is built for (this interpreter's)."""
    return _MINOR


def find_node_python(root: HostRoot, requested: str = "auto") -> str:
    """The node path of a CPython that can run this runtime: the same minor version and
    machine type as this interpreter. `auto` tries PYTHON_CANDIDATES in order. The check
    reads files only (name, stdlib directory, ELF header); when the root is `/` it also
    runs the interpreter. InstallError names every candidate and why it failed."""
    candidates = PYTHON_CANDIDATES if requested == "auto" else (requested,)
    reasons = []
    for candidate in candidates:
        reason = _python_problem(root, candidate)
        if reason is None:
            return candidate
        reasons.append(f"{candidate}: {reason}")
    raise InstallError(
        f"the node has no CPython {python_version()} that netplex can use. The plugin runs on the node, "
        f"outside any container, with the node's Python, and its compiled dependencies (msgspec, pydantic-core, "
        f"PyYAML, rpds-py) are built for CPython {python_version()} ({sys.implementation.cache_tag}). Looked at: "
        + "; ".join(reasons)
        + f". Install python{python_version()} on the node (Debian 12: apt-get install python{python_version()}) "
        "or pass --node-python PATH."
    )


def _python_problem(root: HostRoot, node_path: str) -> str | None:
    inside = root.inside(node_path)
    if not os.path.lexists(inside):
        return "not found"
    resolved = _resolve_in_root(root, node_path)
    if resolved is None:
        return "a symlink that leads nowhere"
    real = root.inside(resolved)
    if not os.path.isfile(real) or not os.access(real, os.X_OK):
        return f"{resolved} is not an executable file"
    named = _PYTHON_NAME.search(os.path.basename(resolved)) or _PYTHON_NAME.search(os.path.basename(node_path))
    if named is None:
        return f"{resolved}: cannot tell its version from its name (want python{python_version()})"
    found = f"{named.group(1)}.{named.group(2)}"
    if found != python_version():
        return f"it is Python {found}"
    prefix = os.path.dirname(os.path.dirname(resolved))
    stdlib = os.path.join(prefix, "lib", f"python{found}", "os.py")
    if not os.path.isfile(root.inside(stdlib)):
        return f"no standard library at {os.path.dirname(stdlib)}"
    ours, theirs = _elf_machine(os.path.realpath(sys.executable)), _elf_machine(real)
    if ours is not None and theirs != ours:
        return "built for another machine type than this runtime"
    if os.path.abspath(root.path) == "/":
        return _run_problem(node_path)
    return None


def _resolve_in_root(root: HostRoot, node_path: str) -> str | None:
    """Follow symlinks with absolute targets taken inside the root (at most 16 hops)."""
    current = node_path
    for _ in range(16):
        inside = root.inside(current)
        if not os.path.islink(inside):
            return current if os.path.exists(inside) else None
        target = os.readlink(inside)
        current = os.path.normpath(target if target.startswith("/") else os.path.join(os.path.dirname(current), target))
    return None


def _elf_machine(path: str) -> tuple[int, int, int] | None:
    """(class, byte order, e_machine) of an ELF file; None when it is not one."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return None
    if len(header) < 20 or not header.startswith(_ELF_MAGIC):
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return header[4], header[5], machine


def _run_problem(node_path: str) -> str | None:
    probe = "import sys; print(sys.implementation.name, sys.implementation.cache_tag)"
    try:
        answer = subprocess.run(
            [node_path, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        return f"cannot run it: {exc.strerror}"
    expected = f"{sys.implementation.name} {sys.implementation.cache_tag}"
    if answer.returncode != 0 or answer.stdout.strip() != expected:
        return f"it says {answer.stdout.strip() or answer.stderr.strip()!r}, want {expected!r}"
    return None
