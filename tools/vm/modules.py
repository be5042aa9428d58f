"""Kernel module dependencies: which .ko files, in which order, a tiny initramfs must load.

Reads the text of `modules.dep` and `modules.builtin` (as written by `depmod`) and answers
with paths relative to `/lib/modules/KVER`. Pure: the caller reads the files.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping

MODULE_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz", ".ko")


def module_name(path: str) -> str:
    """`kernel/fs/9p/9p.ko.xz` -> `9p`; dashes become underscores, as the kernel names them."""
    base = posixpath.basename(path)
    for suffix in MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def parse_dep(text: str) -> dict[str, tuple[str, ...]]:
    """`modules.dep` as {module path: paths it depends on}."""
    deps: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, sep, rest = line.partition(":")
        if not sep:
            raise ValueError(f"malformed modules.dep line: {line!r}")
        deps[path.strip()] = tuple(rest.split())
    return deps


def parse_builtin(text: str) -> frozenset[str]:
    """`modules.builtin` (one path a line) as the set of module names compiled in."""
    return frozenset(module_name(line) for line in text.split() if line)


def load_order(
    deps: Mapping[str, Iterable[str]], wanted: Iterable[str], *, builtin: frozenset[str] = frozenset()
) -> list[str]:
    """Paths of the `wanted` modules and all they need, each after its dependencies.

    A wanted module that is built into the kernel needs no file and is skipped; one that is
    neither built in nor in `deps` is a `LookupError`.
    """
    by_name = {module_name(path): path for path in deps}
    order: list[str] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def visit(path: str) -> None:
        if path in placed:
            return
        if path in visiting:
            raise ValueError(f"dependency cycle through module {module_name(path)!r}")
        visiting.add(path)
        for dep in deps.get(path, ()):
            visit(dep)
        visiting.discard(path)
        placed.add(path)
        order.append(path)

    for name in (wanted_name.replace("-", "_") for wanted_name in wanted):
        if name in by_name:
            visit(by_name[name])
        elif name not in builtin:
            raise LookupError(f"module {name!r} is neither in modules.dep nor built in")
    return order
