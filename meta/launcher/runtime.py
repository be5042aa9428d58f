"""The relocatable runtime `netplex install` puts on a node, and its launchers.

A venv is not relocatable, so a release is a flat library directory (what `pip install
--target` makes) holding netplex's packages and every runtime dependency, plus one entry
script per console script; the node's own CPython runs it (meta.launcher.node checks
that it can). Launchers name node paths (`HostRoot.on_node`).

Nothing is rewritten in place. A release is copied into a staging directory and renamed
to `releases/<id>` whole; a launcher is written beside its final name and renamed over it,
so a running plugin never hits "text file busy" and never sees half a release. The
release the launchers ran before an upgrade stays until the next upgrade, so a plugin
started from it can finish."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path, PurePosixPath

from cni import store
from meta.launcher import bundle, node, templates
from meta.launcher.node import HostRoot, InstallError

log = logging.getLogger(__name__)

DISTRIBUTION = "netplex"
OWN_PACKAGES = ("cni", "delegates", "meta")
RELEASES = "releases"
STAGING_PREFIX = ".staging-"
_SKIPPED_DIRS = frozenset({"__pycache__"})
# Parts of dependencies the plugin never imports, left out of a release: kubernetes's
# asyncio client is two fifths of a release (meta/k8s.py uses the synchronous one).
PRUNED = (PurePosixPath("kubernetes/aio"),)
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclasses.dataclass(frozen=True)
class Source:
    """One distribution's files to copy: (absolute source path, path inside lib/)."""

    name: str
    version: str
    files: tuple[tuple[Path, PurePosixPath], ...]


@dataclasses.dataclass(frozen=True)
class Release:
    id: str
    path: str  # as the installer sees it
    scripts: tuple[tuple[str, str, str], ...]  # (name, module, attr) of each console script
    bundled: bool = False  # it carries its own interpreter (runtime/)


# --- what a release holds ------------------------------------------------------------


def default_sources() -> list[Source]:
    """netplex's own packages and the runtime dependency closure of the `netplex`
    distribution (extras excluded), as installed for this interpreter."""
    own = Source(DISTRIBUTION, _own_version(), tuple(_with_byte_code(_own_files())))
    return [own, *(_dist_source(dist) for dist in _dependency_closure(DISTRIBUTION))]


def console_scripts() -> tuple[tuple[str, str, str], ...]:
    """(name, module, attr) of each of netplex's console scripts (`netplex`, `netplex-bridge`, ...)."""
    found = []
    for entry in metadata.distribution(DISTRIBUTION).entry_points:
        if entry.group == "console_scripts":
            module, _, attr = entry.value.partition(":")
            found.append((entry.name, module.strip(), attr.strip()))
    return tuple(sorted(found))


def release_id(sources: Sequence[Source], *, runtime: bundle.Runtime | None = None, node_path: str = "") -> str:
    """`<version>-<hash>`: the hash covers each dependency's name and version and the
    bytes of netplex's own files, so a rebuilt checkout gets a new release; with a bundled
    runtime, also the interpreter and the node path it is patched for."""
    digest = hashlib.sha256()
    if runtime is not None:
        digest.update(f"runtime {runtime.identity()} at {node_path}\n".encode())
    for source in sorted(sources, key=lambda s: s.name):
        digest.update(f"{source.name}=={source.version}\n".encode())
        if source.name == DISTRIBUTION:
            for path, target in sorted(source.files, key=lambda item: str(item[1])):
                if path.suffix == ".pyc":
                    continue  # byte code follows the sources (and its bytes hold timestamps)
                digest.update(f"{target}\n".encode())
                digest.update(path.read_bytes())
    return f"{_own_version()}-{digest.hexdigest()[:12]}"


def _own_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0"


def _own_files() -> Iterable[tuple[Path, PurePosixPath]]:
    for package in OWN_PACKAGES:
        module = sys.modules.get(package) or __import__(package)
        base = Path(module.__file__ or "").parent
        yield from _tree_files(base, PurePosixPath(package))


def _tree_files(base: Path, target: PurePosixPath) -> Iterable[tuple[Path, PurePosixPath]]:
    for directory, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(name for name in dirnames if name not in _SKIPPED_DIRS)
        relative = PurePosixPath(Path(directory).relative_to(base).as_posix())
        for name in sorted(filenames):
            if not name.endswith((".pyc", ".pyo")):
                yield Path(directory, name), target / relative / name


def _with_byte_code(files: Iterable[tuple[Path, PurePosixPath]]) -> Iterable[tuple[Path, PurePosixPath]]:
    """Each file, and after a `.py` its byte code for this interpreter when there is one
    (the image compiles site-packages at build time, so a release needs no compiling)."""
    for path, target in files:
        yield path, target
        if path.suffix == ".py":
            cached = Path(importlib.util.cache_from_source(str(path)))
            if cached.is_file():
                yield cached, target.parent / "__pycache__" / cached.name


def _dependency_closure(name: str) -> list[metadata.Distribution]:
    """Every distribution `name` needs at run time. Requirements of an extra are left out;
    one with another marker (python_version, sys_platform) counts when it is installed,
    which is what pip decided for this interpreter."""
    seen: dict[str, metadata.Distribution] = {}
    pending = list(metadata.requires(name) or [])
    while pending:
        requirement, _, marker = pending.pop().partition(";")
        if "extra" in marker:
            continue
        found = _REQUIREMENT_NAME.match(requirement)
        if found is None:
            continue
        key = re.sub(r"[-_.]+", "-", found.group(1)).lower()
        if key in seen:
            continue
        try:
            dist = metadata.distribution(key)
        except metadata.PackageNotFoundError as exc:
            if marker.strip():
                continue  # its marker is false here
            raise InstallError(f"dependency {found.group(1)!r} of netplex is not installed here") from exc
        seen[key] = dist
        pending.extend(dist.requires or [])
    return [seen[key] for key in sorted(seen)]


def _dist_source(dist: metadata.Distribution) -> Source:
    """A dependency's files from its RECORD, only those inside its site directory (no
    scripts in bin/, no byte code: the release is compiled after copying)."""
    site = Path(str(dist.locate_file(""))).resolve()
    files = []
    for record in dist.files or ():
        path = Path(str(dist.locate_file(record))).resolve()
        if not path.is_relative_to(site) or not path.is_file() or path.suffix in (".pyc", ".pyo"):
            continue
        target = PurePosixPath(path.relative_to(site).as_posix())
        if not any(target.is_relative_to(pruned) for pruned in PRUNED):
            files.append((path, target))
    return Source(dist.metadata["Name"], dist.version, tuple(_with_byte_code(files)))


# --- building and installing ---------------------------------------------------------


def build_release(
    lib_dir: str,
    sources: Sequence[Source],
    scripts: Sequence[tuple[str, str, str]],
    *,
    compile_byte_code: bool = True,
    runtime: bundle.Runtime | None = None,
    root: HostRoot | None = None,
) -> Release:
    """`lib_dir/releases/<id>`, built now unless it is already there (a release directory
    exists only whole: it is renamed into place after everything is written).
    `compile_byte_code` compiles what came without byte code (in a child process).
    With `runtime`, the release carries that interpreter (meta.launcher.bundle), built
    for the node path `root` gives the release."""
    releases = os.path.join(lib_dir, RELEASES)
    node_releases = (root or HostRoot("/")).on_node(releases)
    rid = release_id(sources, runtime=runtime, node_path=node_releases)
    target = os.path.join(releases, rid)
    release = Release(id=rid, path=target, scripts=tuple(scripts), bundled=runtime is not None)
    if os.path.isdir(target):
        log.info("release %s is already installed", rid)
        return release
    os.makedirs(releases, mode=0o755, exist_ok=True)
    staging = os.path.join(releases, f"{STAGING_PREFIX}{rid}-{uuid.uuid4().hex[:8]}")
    try:
        _fill(staging, sources, scripts, compile_byte_code=compile_byte_code)
        if runtime is not None:
            _bundle(staging, runtime, node_path=f"{node_releases}/{rid}/{bundle.RUNTIME}",
                    compile_byte_code=compile_byte_code)
        try:
            os.rename(staging, target)
        except OSError:
            if not os.path.isdir(target):  # not another installer winning the race
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("installed release %s", target)
    return release


def _fill(
    staging: str, sources: Sequence[Source], scripts: Sequence[tuple[str, str, str]], *, compile_byte_code: bool
) -> None:
    lib = os.path.join(staging, "lib")
    for source in sources:
        for path, target in source.files:
            destination = os.path.join(lib, *target.parts)
            os.makedirs(os.path.dirname(destination), mode=0o755, exist_ok=True)
            shutil.copy2(path, destination)  # keeps mtimes: the byte code below records them
    own = os.path.join(lib, f"{DISTRIBUTION}-{_own_version()}.dist-info")
    os.makedirs(own, mode=0o755, exist_ok=True)
    with open(os.path.join(own, "METADATA"), "w", encoding="utf-8") as handle:
        handle.write(f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {_own_version()}\n")
    bin_dir = os.path.join(staging, "bin")
    os.makedirs(bin_dir, mode=0o755)
    for name, module, attr in scripts:
        with open(os.path.join(bin_dir, name), "w", encoding="utf-8") as handle:
            handle.write(templates.entry(name=name, module=module, attr=attr))
    # Byte code for what had none (a development checkout), so no plugin pays for
    # compiling on the node (its CPython has the same minor version, so the same magic
    # number). A child process: compiling kubernetes's largest modules peaks at ~100 MB.
    if compile_byte_code:
        compiled = subprocess.run(
            [sys.executable, "-I", "-m", "compileall", "-q", "-q", lib], capture_output=True, text=True, check=False
        )
        if compiled.returncode != 0:
            log.warning("some files of the release did not compile; the node compiles them on first import")
    for directory, _dirnames, filenames in os.walk(staging):
        os.chmod(directory, 0o755)
        for name in filenames:
            os.chmod(os.path.join(directory, name), 0o644)


def write_launchers(bin_dir: str, release: Release, *, root: HostRoot, python: str | None) -> list[str]:
    """Write a launcher per console script into `bin_dir`; only those whose text changed
    are replaced (atomically). Returns the names written. `python` None: the release's
    own interpreter, started directly by the launcher's `#!` line."""
    written = []
    release_on_node = root.on_node(release.path)
    for name, module, attr in release.scripts:
        if python is None:
            try:
                text = templates.bundled_launcher(
                    name=name, version=_own_version(), module=module, attr=attr, release=release_on_node,
                    python=bundle.python_in(f"{release_on_node}/{bundle.RUNTIME}"),
                )
            except ValueError as exc:
                raise InstallError(str(exc)) from exc
        else:
            text = templates.launcher(
                name=name, version=_own_version(), python=python, python_version=node.python_version(),
                release=release_on_node,
            )
        path = os.path.join(bin_dir, name)
        if _read(path) == text:
            continue
        store.atomic_write(path, text.encode(), mode=0o755)
        written.append(name)
    return written


def _bundle(staging: str, runtime: bundle.Runtime, *, node_path: str, compile_byte_code: bool) -> None:
    """The release's own interpreter (meta.launcher.bundle) in `staging/runtime`."""
    lib = os.path.join(staging, "lib")
    elves = [
        os.path.join(directory, name)
        for directory, _dirnames, filenames in os.walk(lib)
        for name in filenames
        if name.endswith(".so") or ".so." in name
    ]
    target = os.path.join(staging, bundle.RUNTIME)
    bundle.build(runtime, target, node_path=node_path, elves=sorted(elves))
    if compile_byte_code:  # an image may ship its standard library without byte code
        subprocess.run([sys.executable, "-I", "-m", "compileall", "-q", "-q", os.path.join(target, "lib")],
                       capture_output=True, text=True, check=False)
    for directory, _dirnames, filenames in os.walk(target):
        os.chmod(directory, 0o755)
        for name in filenames:
            path = os.path.join(directory, name)
            os.chmod(path, 0o755 if os.access(path, os.X_OK) else 0o644)


def installed_release(bin_dir: str, root: HostRoot) -> str | None:
    """The id of the release the `netplex` launcher in `bin_dir` runs now, if any."""
    text = _read(os.path.join(bin_dir, DISTRIBUTION))
    found = templates.release_of(text) if text is not None else None
    return os.path.basename(found) if found else None


def remove_old_releases(lib_dir: str, keep: Iterable[str]) -> list[str]:
    """Delete releases (and leftover staging directories) not in `keep`; returns them."""
    releases = os.path.join(lib_dir, RELEASES)
    kept = set(keep)
    removed = []
    try:
        names = sorted(os.listdir(releases))
    except FileNotFoundError:
        return []
    for name in names:
        if name in kept:
            continue
        shutil.rmtree(os.path.join(releases, name), ignore_errors=True)
        removed.append(name)
    return removed


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (FileNotFoundError, UnicodeDecodeError, IsADirectoryError):
        return None
