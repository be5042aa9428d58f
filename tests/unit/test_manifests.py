"""crds/, manifests/, examples/ and the Containerfile: every YAML document is valid
against the Kubernetes API schemas offline (kubernetes-validate, strict: unknown fields
fail), custom resources against our CRD's schema, every NAD and pod annotation passes
`netplex validate`, and the deployment agrees with itself and with `netplex install`."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from meta import cli, daemon_config, install, selection, validate
from meta.model import NETWORKS_ANNOTATION

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes the manifests are written for
YAML_FILES = sorted(
    path
    for directory in ("crds", "manifests", "examples")
    for path in (ROOT / directory).rglob("*.y*ml")
    if path.name != "kustomization.yaml"
)
KUSTOMIZATIONS = sorted(
    path for directory in ("crds", "manifests", "examples") for path in (ROOT / directory).rglob("kustomization.yaml")
)


def documents(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def all_documents(*directories: str) -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc)
        for path in YAML_FILES
        if path.relative_to(ROOT).parts[0] in directories
        for doc in documents(path)
    ]


def named(kind: str) -> dict[str, Any]:
    [doc] = [doc for _path, doc in all_documents("manifests", "crds") if doc["kind"] == kind]
    return doc


def crd_named(name: str) -> dict[str, Any]:
    [doc] = [
        doc for _path, doc in all_documents("crds")
        if doc["kind"] == "CustomResourceDefinition" and doc["metadata"]["name"] == name
    ]
    return doc


NAD_CRD = "network-attachment-definitions.k8s.cni.cncf.io"
POLICY_CRD = "multi-networkpolicies.k8s.cni.cncf.io"


def crd_schema(name: str = NAD_CRD) -> dict[str, Any]:
    crd = crd_named(name)
    [version] = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_there_is_something_to_check() -> None:
    assert len(YAML_FILES) >= 15
    assert {path.relative_to(ROOT).parts[0] for path in YAML_FILES} == {"crds", "manifests", "examples"}


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_document_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    for doc in documents(path):
        if doc["kind"] == "NetworkAttachmentDefinition":
            jsonschema.validate(doc, crd_schema())
            assert doc["apiVersion"] == "k8s.cni.cncf.io/v1"
            assert set(doc) <= {"apiVersion", "kind", "metadata", "spec"}
            kubernetes_validate.validate(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}, KUBERNETES_VERSION, strict=True
            )  # the NAD's metadata, checked as any object's ObjectMeta
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_strict_check_catches_a_misspelt_field() -> None:
    daemonset = copy.deepcopy(named("DaemonSet"))
    first = daemonset["spec"]["template"]["spec"]["containers"][0]
    first["volumeMount"] = first.pop("volumeMounts")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_document_passes_netplex_validate(path: Path) -> None:
    problems, count = validate.validate_file(str(path))
    assert count == len(documents(path))
    assert [str(problem) for problem in problems] == []  # no errors, and no warnings either


def test_the_crd_is_the_npwg_one() -> None:
    crd = crd_named(NAD_CRD)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "network-attachment-definitions.k8s.cni.cncf.io"
    spec = crd["spec"]
    assert spec["group"] == "k8s.cni.cncf.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["plural"] == "network-attachment-definitions"
    assert spec["names"]["kind"] == "NetworkAttachmentDefinition"
    assert "net-attach-def" in spec["names"]["shortNames"]
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    assert crd_schema()["properties"]["spec"]["properties"]["config"] == {
        "description": crd_schema()["properties"]["spec"]["properties"]["config"]["description"],
        "type": "string",
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {"config": {"type": "bridge"}}}, crd_schema())


def test_every_example_nad_config_passes_netplex_config_validation() -> None:
    nads = [doc for _path, doc in all_documents("examples") if doc["kind"] == "NetworkAttachmentDefinition"]
    assert {json.loads(doc["spec"]["config"])["name"] for doc in nads} >= {
        "bridge-net", "macvlan-net", "ipvlan-net", "dualstack-net", "static-net",
    }
    types = set()
    for doc in nads:
        findings = validate.check(doc)
        assert findings == [], doc["metadata"]["name"]
        config = json.loads(doc["spec"]["config"])
        assert config["name"] == doc["metadata"]["name"]  # NPWG: the config names the network it defines
        plugins = config.get("plugins", [config])
        types |= {plugin["type"] for plugin in plugins}
        types |= {plugin["ipam"]["type"] for plugin in plugins if "ipam" in plugin}
    assert types >= {"bridge", "macvlan", "ipvlan", "host-local", "static"}


def test_every_example_pod_selects_networks_its_example_defines() -> None:
    for path, doc in all_documents("examples"):
        metadata = validate.TEMPLATE_PATHS.get(doc["kind"])
        if metadata is None:
            continue
        annotations: Any = doc
        for key in metadata:
            annotations = annotations[key]
        value = annotations.get("annotations", {}).get(NETWORKS_ANNOTATION)
        if value is None:
            continue
        namespace = doc["metadata"].get("namespace", "default")
        defined = {
            (nad["metadata"].get("namespace", "default"), nad["metadata"]["name"])
            for sibling in path.parent.glob("*.yaml")
            for nad in documents(sibling)
            if nad["kind"] == "NetworkAttachmentDefinition"
        }
        for element in selection.parse_selection(value, pod_namespace=namespace):
            assert (element.namespace, element.name) in defined, f"{path}: {element.key}"


def test_every_example_directory_has_a_readme() -> None:
    directories = {path.parent for path in YAML_FILES if path.relative_to(ROOT).parts[0] == "examples"}
    assert len(directories) >= 7
    for directory in directories:
        assert (directory / "README.md").is_file(), directory
    index = (ROOT / "examples" / "README.md").read_text()
    for directory in directories:
        assert f"({directory.name}/)" in index, directory.name


def test_kustomizations_name_files_that_exist() -> None:
    assert KUSTOMIZATIONS
    for path in KUSTOMIZATIONS:
        doc = yaml.safe_load(path.read_text())
        assert doc["kind"] in ("Kustomization", "Component")
        for resource in doc.get("resources", []):
            assert (path.parent / resource).exists(), f"{path}: {resource}"
    manifests = yaml.safe_load((ROOT / "manifests" / "kustomization.yaml").read_text())
    listed = {resource for resource in manifests["resources"] if resource.endswith(".yaml")}
    assert listed == {path.name for path in (ROOT / "manifests").glob("*.yaml")} - {"kustomization.yaml"}
    assert "../crds" in manifests["resources"]


def test_the_cluster_role_is_least_privilege() -> None:
    rules = named("ClusterRole")["rules"]
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
        ("", "pods/status", "patch"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "get"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "list"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "watch"),
        ("", "events", "create"), ("events.k8s.io", "events", "create"),
        # network policy (meta/policy/): read-only
        ("k8s.cni.cncf.io", "multi-networkpolicies", "get"),
        ("k8s.cni.cncf.io", "multi-networkpolicies", "list"),
        ("k8s.cni.cncf.io", "multi-networkpolicies", "watch"),
        ("", "namespaces", "get"), ("", "namespaces", "list"), ("", "namespaces", "watch"),
        ("", "events", "patch"), ("events.k8s.io", "events", "patch"),
    } | CLUSTER_IPAM_GRANTS


# netplex-ipam (delegates/ipam/cluster/): blocks by create/update, claims' status, nodes.
CLUSTER_IPAM_GRANTS = {
    *(
        ("ipam.netplex.io", plural, verb)
        for plural in ("ippools", "ipblocks")
        for verb in ("get", "list", "create", "update")
    ),
    ("k8s.cni.cncf.io", "ipamclaims", "get"), ("k8s.cni.cncf.io", "ipamclaims", "list"),
    ("k8s.cni.cncf.io", "ipamclaims/status", "update"), ("", "nodes", "get"),
    ("ipam.netplex.io", "ipblocks", "delete"),
}


def test_the_binding_gives_the_role_to_the_daemonset_account() -> None:
    binding = named("ClusterRoleBinding")
    account = named("ServiceAccount")
    pod = named("DaemonSet")["spec"]["template"]["spec"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "netplex"}
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": account["metadata"]["namespace"]}
    ]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def pod_spec(daemonset: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = (daemonset or named("DaemonSet"))["spec"]["template"]["spec"]
    return spec


def container(name: str, *, init: bool = False, daemonset: dict[str, Any] | None = None) -> dict[str, Any]:
    [found] = [c for c in pod_spec(daemonset)["initContainers" if init else "containers"] if c["name"] == name]
    assert isinstance(found, dict)
    return found


def install_options(installer: dict[str, Any] | None = None) -> install.InstallOptions:
    installer = installer or container("install", init=True)
    argv = [*installer["command"][1:], *installer["args"]]
    parsed = cli.parser().parse_args(argv)
    assert parsed.command == "install"
    fields = {field for field in install.InstallOptions.__dataclass_fields__}
    return install.InstallOptions(**{key: value for key, value in vars(parsed).items() if key in fields})


def daemon_json(host_root: Path) -> dict[str, Any]:
    """The ConfigMap's daemon config, with /host (not on this machine) at `host_root`."""
    doc: dict[str, Any] = json.loads(named("ConfigMap")["data"]["daemon.json"])
    return {key: str(host_root) if value == "/host" else value for key, value in doc.items()}


def test_daemon_mode_is_the_default_install_then_daemon() -> None:
    spec = pod_spec()
    assert [c["name"] for c in spec["initContainers"]] == ["install"]
    assert [c["name"] for c in spec["containers"]] == ["daemon", "sync"]
    names = [c["name"] for c in spec["initContainers"] + spec["containers"]]
    assert len(set(names)) == len(names)  # Kubernetes wants them unique across both lists
    first = install_options()
    assert first.once is True  # the node has its release and conflist before the daemon starts
    assert first.host_root == "/host"
    assert first.node_python == ""  # the release's own interpreter: the node needs no Python
    keeper = install_options(container("sync"))
    assert keeper.once is False  # keeps the conflist current
    assert dataclasses.replace(keeper, once=True) == first
    daemon = container("daemon")
    parsed = cli.parser().parse_args([*daemon["command"][1:], *daemon["args"]])
    assert parsed.command == "daemon"
    config_mount = next(m for m in daemon["volumeMounts"] if Path(parsed.config).parent == Path(m["mountPath"]))
    assert {v["name"]: v for v in spec["volumes"]}[config_mount["name"]]["configMap"]["name"] == "netplex-config"
    assert Path(parsed.config).name in named("ConfigMap")["data"]


def test_the_daemon_config_in_the_configmap_is_accepted_and_matches_the_mounts(tmp_path: Path) -> None:
    conf = daemon_config.parse(daemon_json(tmp_path), environ={"NODE_NAME": "node-1"})
    assert conf.socket_path == install_options().daemon_socket  # the shim on the node forwards there
    assert (conf.host_root, conf.chroot_dir) == (str(tmp_path), str(tmp_path))
    raw = json.loads(named("ConfigMap")["data"]["daemon.json"])
    spec = pod_spec()
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container("daemon")["volumeMounts"]}
    for key in ("hostRoot", "chrootDir"):  # the node's / with the namespaces made after start
        mount = mounts[raw[key]]
        assert volumes[mount["name"]]["hostPath"]["path"] == "/"
        assert mount["mountPropagation"] == "HostToContainer"
        assert not mount.get("readOnly")  # the node's plugins write their state through it
    # Paths the daemon shares with the plugin on the node are mounted at the node's path.
    for node_path in ("/var/lib/cni", "/run/netns", str(Path(raw["socketPath"]).parent)):
        assert volumes[mounts[node_path]["name"]]["hostPath"]["path"] == node_path
    assert mounts["/run/netns"]["mountPropagation"] == "HostToContainer"
    assert container("daemon")["securityContext"]["privileged"] is True
    node_name = {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    assert node_name in container("daemon")["env"]


def test_the_daemonset_mounts_every_path_the_installer_uses() -> None:
    spec = pod_spec()
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for installer in (container("install", init=True), container("sync")):
        mounts = {mount["mountPath"]: mount for mount in installer["volumeMounts"]}
        for mount in mounts.values():
            assert mount["name"] in volumes
        options = install_options(installer)
        root = options.root
        for path in (options.cni_bin_dir, options.cni_conf_dir, options.lib_dir):
            mount = mounts[path]
            host_path = volumes[mount["name"]]["hostPath"]["path"]
            assert root.on_node(path) == host_path  # the node path is the hostPath
            assert not mount.get("readOnly")
        config_mount = mounts[str(Path(options.config_file).parent)]
        assert volumes[config_mount["name"]]["configMap"]["name"] == named("ConfigMap")["metadata"]["name"]
    # No container looks for a Python on the node any more.
    assert not [v for v in volumes.values() if v.get("hostPath", {}).get("path") == "/usr"]
    assert spec["hostNetwork"] is True


def test_the_daemonset_probes_and_resources() -> None:
    daemon = container("daemon")
    socket_path = install_options().daemon_socket
    for probe, check in (("readinessProbe", "readyz"), ("livenessProbe", "healthz")):
        command = daemon[probe]["exec"]["command"]
        parsed = cli.parser().parse_args(command[1:])
        assert (command[0], parsed.command, parsed.check, parsed.socket) == ("netplex", "probe", check, socket_path)
    keeper = container("sync")
    readiness = keeper["readinessProbe"]["exec"]["command"]
    assert readiness == ["netplex", "validate", install_options().conflist_path]
    assert keeper["livenessProbe"]["exec"]["command"] == ["netplex", "version"]
    # The benchmark's daemon peak (README: 91 MiB with 20 pods in flight) fits the request.
    assert _mebibytes(daemon["resources"]["requests"]["memory"]) >= 92
    assert _mebibytes(daemon["resources"]["limits"]["memory"]) >= 2 * 92
    for each in (daemon, keeper, container("install", init=True)):
        assert set(each["resources"]) == {"requests", "limits"}
        assert each["securityContext"]["runAsUser"] == 0


def _mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * (1024 if unit == "Gi" else 1)


def apply_json6902(doc: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON-patch operations the thin component uses (test, remove, replace, add), as
    kustomize applies them (`kubectl kustomize` of a kustomization using the component
    renders the same DaemonSet; unit tests run no tools)."""
    doc = copy.deepcopy(doc)
    for operation in operations:
        *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]]
        target: Any = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key: Any = int(last) if isinstance(target, list) else last
        if operation["op"] == "test":
            assert target[key] == operation["value"], operation
        elif operation["op"] == "remove":
            del target[key]
        elif operation["op"] in ("replace", "add"):
            target[key] = operation["value"]
        else:
            raise AssertionError(f"unexpected op {operation['op']}")
    return doc


def thin_daemonset() -> dict[str, Any]:
    component = yaml.safe_load((ROOT / "manifests" / "thin" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    [patch] = component["patches"]
    assert patch["target"]["kind"] == "DaemonSet" and patch["target"]["name"] == "netplex"
    return apply_json6902(named("DaemonSet"), yaml.safe_load(patch["patch"]))


def test_the_thin_variant_is_the_installer_alone_and_valid() -> None:
    thin = thin_daemonset()
    kubernetes_validate.validate(thin, KUBERNETES_VERSION, strict=True)
    spec = pod_spec(thin)
    assert "initContainers" not in spec
    [only] = spec["containers"]
    options = install_options(only)
    assert options.daemon_socket == "" and options.once is False
    assert dataclasses.replace(options, daemon_socket=install_options().daemon_socket, once=True) == install_options()


def test_the_configmap_is_a_config_file_netplex_install_accepts(tmp_path: Path) -> None:
    data = named("ConfigMap")["data"]
    options = install_options()
    assert set(data) == {Path(options.config_file).name, "daemon.json"}
    config_file = tmp_path / "netplex.json"
    config_file.write_text(data[Path(options.config_file).name])
    primary = install.Primary(path="/etc/cni/net.d/10-flannel.conflist", doc={
        "cniVersion": "0.3.1", "name": "cbr0", "plugins": [{"type": "flannel"}],
    })
    extra = install._extra_config(str(config_file))
    text = install.render_conflist(primary, entry=extra)
    entry = json.loads(text)["plugins"][0]
    assert entry["namespaceIsolation"] is False


def test_the_containerfile_pins_python_311_and_drops_root() -> None:
    text = (ROOT / "Containerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"docker\.io/library/python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base.group(1))
    assert "pip install /src" in text
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] not in ("0", "root")
    for path in ("cni", "delegates", "meta", "pyproject.toml"):
        assert path in text


def test_the_multi_network_policy_crd_is_the_npwg_one_with_a_structural_schema() -> None:
    crd = crd_named(POLICY_CRD)
    spec = crd["spec"]
    assert (spec["group"], spec["scope"], spec["names"]["kind"], spec["names"]["plural"]) == (
        "k8s.cni.cncf.io", "Namespaced", "MultiNetworkPolicy", "multi-networkpolicies"
    )
    versions = {v["name"]: (v["served"], v["storage"]) for v in spec["versions"]}
    assert versions == {"v1beta1": (True, True), "v1beta2": (True, False)}
    schemas = [v["schema"]["openAPIV3Schema"] for v in spec["versions"]]
    assert schemas[0] == schemas[1], "both versions mean the same"
    _assert_structural(schemas[0], "openAPIV3Schema")
    policy = {
        "apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
        "metadata": {"name": "p", "annotations": {"k8s.v1.cni.cncf.io/policy-for": "default/net-a"}},
        "spec": {
            "podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                                  {"namespaceSelector": {}, "podSelector": {"matchExpressions": [
                                      {"key": "role", "operator": "In", "values": ["a"]}]}}],
                         "ports": [{"protocol": "TCP", "port": 80, "endPort": 90}, {"port": "http"}]}],
            "egress": [{"to": [{"podSelector": {}}], "ports": [{"protocol": "SCTP", "port": 9}]}],
        },
    }
    jsonschema.validate(policy, schemas[0])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**policy, "spec": {"ingress": [{"from": [{"ipBlock": {}}]}]}}, schemas[0])


def _assert_structural(schema: dict[str, Any], where: str) -> None:
    """Kubernetes' structural-schema rules, as far as our CRDs use them: every node has
    a type (or is int-or-string, or keeps unknown fields), and anyOf only carries types
    already allowed."""
    if schema.get("x-kubernetes-int-or-string"):
        assert all(set(branch) == {"type"} for branch in schema.get("anyOf", [])), where
        return
    assert "type" in schema or schema.get("x-kubernetes-preserve-unknown-fields"), f"{where}: no type"
    for name, child in schema.get("properties", {}).items():
        _assert_structural(child, f"{where}.{name}")
    if "items" in schema:
        _assert_structural(schema["items"], f"{where}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        _assert_structural(schema["additionalProperties"], f"{where}{{}}")


def test_the_cluster_ipam_objects_match_their_crds() -> None:
    import ipaddress

    from delegates.ipam.cluster import blocks
    from delegates.ipam.cluster.config import PoolRange

    subnet = ipaddress.ip_network("10.1.0.0/24")
    pool_range = PoolRange(subnet, subnet[1], subnet[254], (), None, 28, "ipam")
    pool = blocks.pool_name("net", subnet)
    for name, obj in (
        ("ippools.ipam.netplex.io", blocks.pool_object(pool, pool_range, "net")),
        ("ipblocks.ipam.netplex.io", blocks.block_object(pool, blocks.block_at(pool_range, 3), "node-1")),
    ):
        crd = crd_named(name)
        assert crd["spec"]["group"] == blocks.GROUP and crd["spec"]["scope"] == "Cluster"
        assert obj["kind"] == crd["spec"]["names"]["kind"] and obj["apiVersion"] == f"{blocks.GROUP}/{blocks.VERSION}"
        jsonschema.validate(obj, crd_schema(name))
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**obj, "spec": {}}, crd_schema(name))


def test_the_ipamclaim_crd_is_the_npwg_one() -> None:
    crd = crd_named("ipamclaims.k8s.cni.cncf.io")
    assert (crd["spec"]["group"], crd["spec"]["scope"], crd["spec"]["names"]["kind"]) == (
        "k8s.cni.cncf.io", "Namespaced", "IPAMClaim",
    )
    [version] = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    claim = {
        "apiVersion": "k8s.cni.cncf.io/v1alpha1", "kind": "IPAMClaim", "metadata": {"name": "vm-a"},
        "spec": {"network": "tenant", "interface": "net1"},
        "status": {"ips": ["10.1.0.5/24"], "ownerPod": "virt-launcher-a"},
    }
    jsonschema.validate(claim, crd_schema("ipamclaims.k8s.cni.cncf.io"))


CRD_DOCS = [doc for _path, doc in all_documents("crds") if doc.get("kind") == "CustomResourceDefinition"]


@pytest.mark.parametrize("crd", CRD_DOCS, ids=[doc["metadata"]["name"] for doc in CRD_DOCS])
def test_every_crd_is_one_a_real_apiserver_accepts(crd: dict[str, Any]) -> None:
    """apiextensions.k8s.io/v1 as kube-apiserver validates it: the name is
    <plural>.<group>, exactly one storage version, and every served version has a
    structural openAPIV3Schema whose metadata says nothing beyond name/generateName."""
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
    assert spec["scope"] in ("Namespaced", "Cluster")
    assert spec["names"]["kind"] and spec["names"]["plural"] == spec["names"]["plural"].lower()
    assert sum(1 for version in spec["versions"] if version["storage"]) == 1
    for version in spec["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        assert schema["type"] == "object", version["name"]
        _assert_structural(schema, f"{version['name']}.openAPIV3Schema")
        metadata = schema.get("properties", {}).get("metadata", {})
        assert set(metadata.get("properties", {})) <= {"name", "generateName"}, version["name"]
