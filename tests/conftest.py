"""Suite-wide pytest policy: privileged lanes skip off CI without root, and fail in CI."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.parts
        if "netns" in parts and "tests" in parts:
            item.add_marker(pytest.mark.netns)
        if "kube" in parts and "tests" in parts:
            item.add_marker(pytest.mark.kube)
    privileged = [item for item in items if item.get_closest_marker("netns") or item.get_closest_marker("runtimes")]
    if privileged and os.geteuid() != 0:
        if os.environ.get("CI"):  # a skip in CI would hide a failure: refuse instead
            raise pytest.UsageError(f"{len(privileged)} netns/runtimes tests need root")
        for item in privileged:
            item.add_marker(pytest.mark.skip(reason="needs root: creates network namespaces"))
