"""meta/validate.py: `netplex validate` on good and bad files; every message names its
place as file:document:path."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cni.errors import CniError
from meta import validate

NAD = """\
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: {name}
  namespace: default
spec:
  config: '{config}'
"""
GOOD_BRIDGE = {
    "cniVersion": "1.0.0",
    "name": "blue",
    "type": "bridge",
    "bridge": "br-blue",
    "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"},
}
META = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "flannel"}


def nad(config: dict[str, Any] | str, name: str = "blue") -> str:
    text = config if isinstance(config, str) else json.dumps(config)
    return NAD.format(name=name, config=text.replace("'", "''"))


def pod(annotation: str, *, kind: str = "Pod") -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: {kind}
        metadata:
          name: p
          annotations:
            k8s.v1.cni.cncf.io/networks: '{annotation}'
        """)


def lint(tmp_path: Path, text: str, name: str = "f.yaml") -> list[str]:
    path = tmp_path / name
    path.write_text(text)
    problems, _count = validate.validate_file(str(path))
    return [str(problem).removeprefix(f"{path}:") for problem in problems]


def test_a_good_nad_has_no_problems(tmp_path: Path) -> None:
    assert lint(tmp_path, nad(GOOD_BRIDGE)) == []


def test_a_nad_without_config_is_fine(tmp_path: Path) -> None:
    text = "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: x}\nspec: {}\n"
    assert lint(tmp_path, text) == []  # NPWG: the config comes from confDir then


def test_documents_are_numbered_from_one(tmp_path: Path) -> None:
    bad = {**GOOD_BRIDGE, "mtu": 5}
    text = nad(GOOD_BRIDGE) + "---\n" + nad(bad, "red")
    assert lint(tmp_path, text) == ["2:spec.config.mtu: MTU 5 is out of range 68-65535 (0: the kernel's default)"]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({**GOOD_BRIDGE, "type": "macvlan", "mode": "brdge"}, "1:spec.config.mode: Invalid enum value"),
        ({**GOOD_BRIDGE, "ipam": {"type": "host-local", "subnet": "10.1.0.0/33"}}, "1:spec.config.ipam.subnet:"),
        ({**GOOD_BRIDGE, "type": "ipvlan", "mode": "l4"}, "1:spec.config.mode:"),
        ({**GOOD_BRIDGE, "ipam": {"type": "static", "addresses": [{"address": "10.0.0.1"}]}}, "1:spec.config.ipam"),
        ({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}, {"name": "x"}]}, "1:spec.config.plugins.1.type: "),
        ({"cniVersion": "9.9.9", "type": "bridge"}, "1:spec.config: incompatible CNI versions"),
        ({"cniVersion": "1.0.0", "plugins": [{"type": "bridge", "vlan": 5000}]}, "1:spec.config.plugins.0.vlan:"),
    ],
)
def test_a_bad_nad_config_names_the_field(tmp_path: Path, config: dict[str, Any], expected: str) -> None:
    found = [line for line in lint(tmp_path, nad(config)) if ": warning: " not in line]  # bridge's keys elsewhere
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_a_nad_with_a_bad_name_namespace_and_api_version(tmp_path: Path) -> None:
    text = nad(GOOD_BRIDGE, name="Bad_Name").replace("k8s.cni.cncf.io/v1", "k8s.cni.cncf.io/v2")
    text = text.replace("namespace: default", "namespace: Not.A.Label")
    assert lint(tmp_path, text) == [
        "1:apiVersion: want 'k8s.cni.cncf.io/v1', not 'k8s.cni.cncf.io/v2'",
        "1:metadata.name: 'Bad_Name' is not a valid object name (a DNS-1123 subdomain)",
        "1:metadata.namespace: 'Not.A.Label' is not a valid namespace",
    ]


def test_spec_config_must_be_a_json_string(tmp_path: Path) -> None:
    as_map = "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: x}\n" \
        "spec:\n  config: {type: bridge}\n"
    [problem] = lint(tmp_path, as_map)
    assert problem.startswith("1:spec.config: must be a string holding a JSON CNI config")
    [problem] = lint(tmp_path, nad("{not json"))
    assert problem.startswith("1:spec.config: not valid JSON")


def test_pod_annotation_errors_name_the_annotation(tmp_path: Path) -> None:
    [problem] = lint(tmp_path, pod('[{"name": "blue", "interface": "much-too-long-ifname"}]'))
    assert problem.startswith("1:metadata.annotations[k8s.v1.cni.cncf.io/networks]: element 0 ('blue'): interface")
    [problem] = lint(tmp_path, pod("a/b/c"))
    assert problem == (
        "1:metadata.annotations[k8s.v1.cni.cncf.io/networks]: element 0 ('a/b/c'): want [namespace/]name[@interface]"
    )
    [problem] = lint(tmp_path, pod('[{"name": "x", "mac": "zz"}]'))
    assert problem.startswith("1:metadata.annotations[k8s.v1.cni.cncf.io/networks]: element 0 ('x'): mac:")


def test_good_pod_annotations_pass_in_both_forms(tmp_path: Path) -> None:
    assert lint(tmp_path, pod("blue, other/red@net5")) == []
    assert lint(tmp_path, pod('[{"name": "blue", "ips": ["10.1.0.5/24"], "default-route": ["10.1.0.1"]}]')) == []


def test_an_unknown_selection_key_is_a_warning_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(pod('[{"name": "blue", "interfac": "x"}]'))
    problems, _ = validate.validate_file(str(path))
    assert [(p.path, p.warning) for p in problems] == [("metadata.annotations[k8s.v1.cni.cncf.io/networks]", True)]
    assert "unknown key 'interfac' ignored" in problems[0].message
    assert validate.run([str(path)]) == 0


def test_a_default_network_annotation_is_checked(tmp_path: Path) -> None:
    text = pod("blue").replace("k8s.v1.cni.cncf.io/networks: 'blue'", "v1.multus-cni.io/default-network: 'a,b'")
    assert lint(tmp_path, text) == [
        "1:metadata.annotations[v1.multus-cni.io/default-network]: want exactly one network, got 2"
    ]


@pytest.mark.parametrize(
    ("kind", "path"),
    [("Deployment", "spec.template.metadata"), ("DaemonSet", "spec.template.metadata"),
     ("CronJob", "spec.jobTemplate.spec.template.metadata")],
)
def test_pod_templates_of_workloads_are_checked(tmp_path: Path, kind: str, path: str) -> None:
    metadata: dict[str, Any] = {"annotations": {"k8s.v1.cni.cncf.io/networks": "a/b/c"}}
    spec: dict[str, Any] = {"template": {"metadata": metadata}}
    if kind == "CronJob":
        spec = {"jobTemplate": {"spec": spec}}
    doc = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w"}, "spec": spec}
    [problem] = lint(tmp_path, json.dumps(doc), name="w.json")
    assert problem.startswith(f"1:{path}.annotations[k8s.v1.cni.cncf.io/networks]: element 0")


def test_a_non_string_annotation_is_an_error(tmp_path: Path) -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    k8s.v1.cni.cncf.io/networks: 5\n"
    assert lint(tmp_path, text) == [
        "1:metadata.annotations[k8s.v1.cni.cncf.io/networks]: must be a string (quote it in YAML)"
    ]


def test_list_items_are_checked_with_their_index(tmp_path: Path) -> None:
    bad = {**GOOD_BRIDGE, "mtu": 5}
    items = [
        {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition", "metadata": {"name": n},
         "spec": {"config": json.dumps(c)}}
        for n, c in (("a", GOOD_BRIDGE), ("b", bad))
    ]
    doc = {"apiVersion": "v1", "kind": "List", "items": items}
    [problem] = lint(tmp_path, json.dumps(doc), name="list.json")
    assert problem.startswith("1:items.1.spec.config.mtu: MTU 5 is out of range")


def test_other_kinds_pass(tmp_path: Path) -> None:
    assert lint(tmp_path, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n") == []


def test_a_good_meta_config_passes(tmp_path: Path) -> None:
    assert lint(tmp_path, json.dumps(META), name="netplex.conf") == []
    conflist = {"cniVersion": "1.0.0", "name": "n", "plugins": [{k: v for k, v in META.items() if k != "cniVersion"}]}
    assert lint(tmp_path, json.dumps(conflist), name="00-netplex.conflist") == []


def test_meta_config_schema_errors_name_the_key(tmp_path: Path) -> None:
    assert lint(tmp_path, json.dumps({**META, "logLevel": "loud"}), name="m.json") == [
        "1:logLevel: 'loud' is not one of ['', 'debug', 'verbose', 'info', 'warning', 'error', 'panic']"
    ]
    assert lint(tmp_path, json.dumps({**META, "addTimeout": -1}), name="m.json") == [
        "1:addTimeout: -1 is less than or equal to the minimum of 0"
    ]


def test_a_meta_config_without_cluster_network_says_so(tmp_path: Path) -> None:
    doc = {k: v for k, v in META.items() if k != "clusterNetwork"}
    assert lint(tmp_path, json.dumps(doc), name="m.json") == ["1:clusterNetwork: set clusterNetwork or delegates"]


def test_meta_config_delegates_are_checked_as_networks(tmp_path: Path) -> None:
    listed = {"name": "l", "plugins": [{"type": "flannel"}, {"type": "bridge", "vlan": 9999}]}
    doc = {**{k: v for k, v in META.items() if k != "clusterNetwork"}, "delegates": [{"type": "bridge"}, listed]}
    conflist = {"cniVersion": "1.0.0", "name": "n", "plugins": [{k: v for k, v in doc.items() if k != "cniVersion"}]}
    [problem] = lint(tmp_path, json.dumps(conflist), name="00-netplex.conflist")
    assert problem.startswith("1:plugins.0.delegates.1.plugins.1.vlan: invalid VLAN ID 9999")


def test_a_multus_config_is_read_as_netplex_reads_it(tmp_path: Path) -> None:
    doc = {**META, "type": "multus", "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
           "globalNamespaces": "default,shared"}
    assert lint(tmp_path, json.dumps(doc), name="00-multus.conf") == []


def test_an_unknown_meta_key_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**META, "colour": "blue"}))
    problems, _ = validate.validate_file(str(path))
    assert [(p.warning, p.message) for p in problems] == [(True, "netplex config: unknown key 'colour' ignored")]


def test_a_plain_cni_config_is_checked_as_a_network(tmp_path: Path) -> None:
    assert lint(tmp_path, json.dumps(GOOD_BRIDGE), name="10-bridge.conf") == []
    [problem] = lint(tmp_path, json.dumps({**GOOD_BRIDGE, "hairpinMode": "often"}), name="10-bridge.conf")
    assert problem.startswith("1:hairpinMode: Expected `bool`, got `str`")


def test_unparseable_files_are_reported_with_the_line(tmp_path: Path) -> None:
    assert lint(tmp_path, "a: [1,\nb: 2\n") == [
        "0:(document): not valid YAML at line 3: did not find expected ',' or ']'"
    ]
    [problem] = lint(tmp_path, "{", name="x.json")
    assert problem.startswith("0:(document): not valid JSON")
    assert lint(tmp_path, "- 1\n") == ["1:(document): not a mapping: want a Kubernetes object or a CNI config"]
    assert lint(tmp_path, "name: x\n") == [
        "1:(document): neither a Kubernetes object (apiVersion, kind) nor a CNI config (type or plugins)"
    ]


def test_run_prints_problems_and_a_summary_and_fails_on_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(nad(GOOD_BRIDGE))
    bad = tmp_path / "bad.yaml"
    bad.write_text(nad(GOOD_BRIDGE) + "---\n" + nad({**GOOD_BRIDGE, "mtu": 5}))
    assert validate.run([str(good)]) == 0
    assert capsys.readouterr().out == "1 file(s), 1 document(s): 0 error(s), 0 warning(s)\n"
    assert validate.run([str(good), str(bad), str(tmp_path / "missing.yaml")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{bad}:2:spec.config.mtu: MTU 5 is out of range 68-65535 (0: the kernel's default)",
        f"{tmp_path / 'missing.yaml'}:0:(document): cannot read: No such file or directory",
        "3 file(s), 3 document(s): 2 error(s), 0 warning(s)",
    ]


def test_validate_is_the_cli_command(tmp_path: Path) -> None:
    from meta import cli

    path = tmp_path / "n.yaml"
    path.write_text(nad({**GOOD_BRIDGE, "mtu": 5}))
    assert cli.main(["validate", str(path)]) == 1
    path.write_text(nad(GOOD_BRIDGE))
    assert cli.main(["validate", str(path)]) == 0


def test_every_error_of_an_object_is_reported_not_only_the_first(tmp_path: Path) -> None:
    found = lint(tmp_path, nad({**GOOD_BRIDGE, "mtu": 20, "vlan": 5000}))
    assert found == [
        "1:spec.config.mtu: MTU 20 is out of range 68-65535 (0: the kernel's default)",
        "1:spec.config.vlan: invalid VLAN ID 5000 (must be between 0 and 4094)",
    ]


def test_typos_in_delegate_and_ipam_keys_are_warned_with_the_closest_key(tmp_path: Path) -> None:
    config = {"cniVersion": "1.0.0", "type": "macvlan", "mastr": "eth0", "isGateway": True,
              "ipam": {"type": "host-local", "subnet": "10.1.0.0/24", "rnges": []}}
    found = lint(tmp_path, nad(config))
    assert found == [
        "1:spec.config.mastr: warning: unknown key of 'macvlan', ignored (did you mean `master`?)",
        "1:spec.config.isGateway: warning: unknown key of 'macvlan', ignored",
        "1:spec.config.ipam.rnges: warning: unknown key of 'host-local', ignored (did you mean `ranges`?)",
    ]


def test_a_key_in_another_case_is_known_as_go_plugins_read_it(tmp_path: Path) -> None:
    assert lint(tmp_path, nad({**GOOD_BRIDGE, "isgateway": True})) == []


def test_an_unknown_key_of_a_selection_element_suggests_the_known_one(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n"
        "    k8s.v1.cni.cncf.io/networks: '[{\"name\": \"blue\", \"interfce\": \"x1\"}]'\n"
    )
    assert lint(tmp_path, text) == [
        "1:metadata.annotations[k8s.v1.cni.cncf.io/networks]: warning: element 0 ('blue'): "
        "unknown key 'interfce' ignored (did you mean `interface`?)"
    ]


def test_every_error_of_a_selection_element_is_reported(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n"
        "    k8s.v1.cni.cncf.io/networks: '[{\"name\": \"blue\", \"mac\": 5, \"ips\": \"x\"}]'\n"
    )
    found = lint(tmp_path, text)
    assert len(found) == 2, found
    assert any(".mac" in line or "mac:" in line for line in found), found
    assert any("ips" in line for line in found), found


def test_every_error_reruns_without_each_bad_key_and_drops_what_the_dropping_caused() -> None:
    def run(doc: dict[str, Any]) -> None:
        if "mtu" in doc and doc["mtu"] < 68:
            raise CniError(7, "mtu: too small")
        if "subnet" not in doc["ipam"]:
            raise CniError(7, "ipam: subnet required")  # only because the bad subnet was dropped
        if doc["ipam"]["subnet"].endswith("/33"):
            raise CniError(7, "ipam.subnet: bad prefix")

    found = validate.every_error(run, {"mtu": 20, "ipam": {"subnet": "10.0.0.0/33"}})
    assert [err.msg for err in found] == ["mtu: too small", "ipam.subnet: bad prefix"]
