"""Fixtures of the kube lane: a running API double, a kubeconfig pointing at it, and a
meta.k8s.Kube client built from that kubeconfig (the way the CNI path builds one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meta import k8s
from tests.kube.apidouble import ApiDouble

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: double
  cluster:
    server: {server}
contexts:
- name: double
  context:
    cluster: double
    user: netplex
current-context: double
users:
- name: netplex
  user: {{}}
"""


@pytest.fixture
def api_double() -> Iterator[ApiDouble]:
    """A running API double; stopped and checked for internal errors afterwards."""
    double = ApiDouble()
    double.start()
    try:
        yield double
    finally:
        double.close()
    assert not double.errors, f"the API double failed inside: {double.errors!r}"


@pytest.fixture
def kubeconfig(tmp_path: Path, api_double: ApiDouble) -> str:
    """A kubeconfig file for the double: plain HTTP, no credentials."""
    path = tmp_path / "netplex.kubeconfig"
    path.write_text(KUBECONFIG.format(server=api_double.url))
    return str(path)


@pytest.fixture
def kube(kubeconfig: str) -> Iterator[k8s.Kube]:
    client = k8s.Kube.from_kubeconfig(kubeconfig, timeout=2.0)
    try:
        yield client
    finally:
        client.close()
