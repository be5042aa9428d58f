"""The `cni` package: its public names are listed, sorted, resolve, and load lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import cni

from .conftest import subprocess_env


def _ruff_order(name: str) -> tuple[int, str]:
    """isort-style order, as ruff's RUF022 sorts `__all__`: CONSTANTS, Classes, functions."""
    if name.isupper() or (name.upper() == name and "_" in name):
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted_and_unique() -> None:
    assert cni.__all__ == sorted(cni.__all__, key=_ruff_order)
    assert len(set(cni.__all__)) == len(cni.__all__)


def test_all_lists_exactly_the_exports() -> None:
    assert set(cni.__all__) == set(cni._EXPORTS)


def test_every_public_name_resolves_to_what_its_module_defines() -> None:
    for name in cni.__all__:
        value = getattr(cni, name)
        module = importlib.import_module(cni._EXPORTS[name])
        if module.__name__ == f"cni.{name}":
            assert value is module
        else:
            assert value is getattr(module, name), name


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from cni import *", namespace)
    assert set(cni.__all__) <= set(namespace)


def test_invoke_is_the_module_whatever_the_import_order() -> None:
    code = """
import cni
first = cni.invoke
from cni import chain, invoke
import cni.invoke
assert first is invoke is chain.invoke is cni.invoke, (first, invoke, chain.invoke)
assert callable(invoke.invoke)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env({}), capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.stdout.strip() == "ok", proc.stderr
    assert isinstance(cni.invoke, types.ModuleType)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        cni.no_such_name  # noqa: B018
