"""meta.local: a directory of manifests as the network source."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from meta import local
from meta.model import NETWORK_STATUS_ANNOTATION
from meta.source import NotFound, Pod, Source, SourceError

NETWORKS = "k8s.v1.cni.cncf.io/networks"
RESOURCE_NAME = "k8s.v1.cni.cncf.io/resourceName"

MULTI_DOC = """\
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan-conf
  annotations:
    k8s.v1.cni.cncf.io/resourceName: intel.com/sriov
spec:
  config: |
    {"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0"}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: by-file
  namespace: other
---
# a ConfigMap beside them is not ours: skipped
apiVersion: v1
kind: ConfigMap
metadata:
  name: ignored
data: {}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  uid: 1d3b2c5e-0000-4000-8000-000000000001
  annotations:
    k8s.v1.cni.cncf.io/networks: macvlan-conf, other/by-file
spec:
  containers: [{name: web, image: nginx}]
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


@pytest.fixture
def source(tmp_path: Path) -> local.LocalSource:
    write(tmp_path, "cluster.yaml", MULTI_DOC)
    return local.LocalSource(str(tmp_path))


def test_local_source_is_a_source(source: local.LocalSource) -> None:
    typed: Source = source
    assert typed is source


def test_nad_config_comes_from_spec_config(source: local.LocalSource) -> None:
    nad = source.get_attachment("default", "macvlan-conf")
    assert json.loads(nad.config) == {"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0"}
    assert nad.annotations == {RESOURCE_NAME: "intel.com/sriov"}
    assert (nad.namespace, nad.name) == ("default", "macvlan-conf")


def test_nad_without_config_has_empty_config(source: local.LocalSource) -> None:
    assert source.get_attachment("other", "by-file").config == ""


def test_missing_nad_is_not_found(source: local.LocalSource) -> None:
    with pytest.raises(NotFound, match='NetworkAttachmentDefinition "default/nope"'):
        source.get_attachment("default", "nope")


def test_pod_carries_its_annotations_and_uid(source: local.LocalSource) -> None:
    pod = source.get_pod("default", "web")
    assert pod.annotations == {NETWORKS: "macvlan-conf, other/by-file"}
    assert pod.uid == "1d3b2c5e-0000-4000-8000-000000000001"


def test_empty_namespace_means_default(source: local.LocalSource) -> None:
    assert source.get_pod("", "web").annotations[NETWORKS]
    assert source.get_attachment("", "macvlan-conf").name == "macvlan-conf"


def test_pod_without_manifest_is_a_pod_without_annotations(source: local.LocalSource) -> None:
    assert source.get_pod("default", "podman_container-1") == Pod("default", "podman_container-1")


def test_missing_directory_is_empty(tmp_path: Path) -> None:
    source = local.LocalSource(str(tmp_path / "absent"))
    assert source.get_pod("default", "web") == Pod("default", "web")
    with pytest.raises(NotFound):
        source.get_attachment("default", "macvlan-conf")


def test_json_and_yml_files_and_lists_are_read(tmp_path: Path) -> None:
    nad = {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "from-json", "namespace": "ns1"},
        "spec": {"config": '{"type": "bridge"}'},
    }
    # tab-indented JSON: valid JSON that PyYAML would reject
    write(tmp_path, "nad.json", json.dumps(nad, indent="\t"))
    write(
        tmp_path,
        "pods.yml",
        "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: a, namespace: ns1}\n"
        "- kind: Pod\n  metadata: {name: b, namespace: ns1, annotations: {x: 'y'}}\n",
    )
    write(tmp_path, "notes.txt", "not: [a manifest")
    write(tmp_path, ".hidden.yaml", "not: [a manifest")
    manifests = local.load_manifests(str(tmp_path))
    assert set(manifests.attachments) == {("ns1", "from-json")}
    assert set(manifests.pods) == {("ns1", "a"), ("ns1", "b")}
    assert manifests.pods["ns1", "b"].annotations == {"x": "y"}
    assert manifests.files["Pod", "ns1", "a"] == str(tmp_path / "pods.yml")


def test_status_write_is_read_back_with_the_pod(source: local.LocalSource, tmp_path: Path) -> None:
    status = [{"name": "default/macvlan-conf", "interface": "net1", "ips": ["10.1.0.5"], "mac": "0a:58:0a:01:00:05"}]
    source.set_network_status(Pod("default", "web"), status)
    path = tmp_path / "status" / "default_web.json"
    assert json.loads(path.read_text()) == status
    pod = source.get_pod("default", "web")
    assert json.loads(pod.annotations[NETWORK_STATUS_ANNOTATION]) == status
    assert pod.annotations[NETWORKS] == "macvlan-conf, other/by-file"  # the manifest's stay
    # a fresh source (the next CNI invocation) reads the same
    assert local.LocalSource(str(tmp_path)).get_pod("default", "web") == pod


def test_status_value_is_what_multus_writes(source: local.LocalSource, tmp_path: Path) -> None:
    source.set_network_status(Pod("default", "web"), [{"name": "a", "default": True}, {"name": "b"}])
    expected = '[{\n    "name": "a",\n    "default": true\n},{\n    "name": "b"\n}]'
    assert (tmp_path / "status" / "default_web.json").read_text() == expected


def test_status_of_a_pod_without_manifest_is_kept(source: local.LocalSource) -> None:
    source.set_network_status(Pod("", "ctr"), [{"name": "x"}])
    assert json.loads(source.get_pod("default", "ctr").annotations[NETWORK_STATUS_ANNOTATION]) == [{"name": "x"}]


def test_status_write_is_atomic(source: local.LocalSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source.set_network_status(Pod("default", "web"), [{"name": "old"}])

    def crash(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(SourceError, match='pod "default/web": cannot write'):
        source.set_network_status(Pod("default", "web"), [{"name": "new"}])
    monkeypatch.undo()
    assert os.listdir(tmp_path / "status") == ["default_web.json"]  # no partial file left
    assert json.loads(source.get_pod("default", "web").annotations[NETWORK_STATUS_ANNOTATION]) == [{"name": "old"}]


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "", "x" * 254])
def test_status_path_refuses_unsafe_pod_names(source: local.LocalSource, name: str) -> None:
    with pytest.raises(SourceError, match="not a valid namespace and pod name"):
        source.set_network_status(Pod("default", name), [])


def test_status_path_refuses_namespaces_with_underscores(source: local.LocalSource) -> None:
    with pytest.raises(SourceError):
        source.get_pod("a_b", "c")


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", MULTI_DOC)
    bad = write(tmp_path, "bad.yaml", "kind: Pod\nmetadata:\n  name: [unclosed\n")
    source = local.LocalSource(str(tmp_path))
    with pytest.raises(SourceError, match=re.escape(f'manifest "{bad}": invalid YAML at line ')):
        source.get_attachment("default", "macvlan-conf")


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.json", '{"kind": "Pod",\n')
    with pytest.raises(SourceError, match=re.escape(f'manifest "{bad}": invalid JSON at line 2')):
        local.load_manifests(str(tmp_path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just\n- a list\n", "not a Kubernetes object"),
        ("kind: Pod\nmetadata: {}\n", "Pod without metadata.name"),
        ("kind: Pod\nmetadata: {name: p, annotations: {replicas: 3}}\n", 'annotation "replicas" must be a string'),
        (
            "kind: NetworkAttachmentDefinition\nmetadata: {name: n}\nspec: {config: {type: bridge}}\n",
            "spec.config must be a string",
        ),
    ],
)
def test_objects_the_api_would_reject_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    bad = write(tmp_path, "bad.yaml", text)
    with pytest.raises(SourceError, match=re.escape(f'manifest "{bad}", document 1')) as caught:
        local.load_manifests(str(tmp_path))
    assert message in str(caught.value)


def test_one_object_defined_twice_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", MULTI_DOC)
    write(tmp_path, "b.yaml", "kind: Pod\nmetadata: {name: web, namespace: default}\n")
    with pytest.raises(SourceError, match='Pod "default/web" is also defined in'):
        local.load_manifests(str(tmp_path))


def test_manifests_are_read_once_per_source(source: local.LocalSource, tmp_path: Path) -> None:
    source.get_pod("default", "web")
    (tmp_path / "cluster.yaml").unlink()
    assert source.get_attachment("default", "macvlan-conf").name == "macvlan-conf"
