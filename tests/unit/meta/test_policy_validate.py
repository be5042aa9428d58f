"""`netplex validate` and MultiNetworkPolicies: a bad policy is an error naming the
field; a thin-mode netplex config beside a policy gets a warning (only the daemon
enforces policy); a daemon-mode config does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meta import cli

POLICY = """\
apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata:
  name: deny
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/policy-for: default/net-a
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""


def conflist(**keys: object) -> str:
    return json.dumps({"cniVersion": "1.0.0", "name": "netplex", "plugins": [
        {"type": "netplex", "clusterNetwork": "cluster", **keys}]})


def test_a_policy_beside_a_thin_config_is_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "00-netplex.conflist").write_text(conflist())
    assert cli.main(["validate", str(tmp_path / "policy.yaml"), str(tmp_path / "00-netplex.conflist")]) == 0
    out = capsys.readouterr().out
    assert "warning: a MultiNetworkPolicy exists" in out and "daemonSocket" in out
    assert "0 error(s), 1 warning(s)" in out


def test_a_daemon_mode_config_gets_no_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "00-netplex.conflist").write_text(conflist(daemonSocket="/run/netplex/netplex.sock"))
    assert cli.main(["validate", str(tmp_path / "policy.yaml"), str(tmp_path / "00-netplex.conflist")]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_a_bad_policy_is_an_error_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY + "  ingress:\n  - ports:\n    - port: 0\n")
    assert cli.main(["validate", str(tmp_path / "policy.yaml")]) == 1
    assert "spec.ingress.0.ports.0.port" in capsys.readouterr().out
