"""meta/resolve.py and meta/netconfs.py: from config + pod + source to the ordered plan."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from cni.errors import CniError, Code
from meta import config, netconfs, resolve
from meta.model import Attachment
from meta.source import Forbidden, NetworkAttachment, NotFound, Pod, Unavailable

NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"


class FakeSource:
    """NetworkAttachmentDefinitions from a dict; records every read."""

    def __init__(self, nads: Mapping[str, Any] | None = None, *, failure: Exception | None = None) -> None:
        self.nads: dict[tuple[str, str], NetworkAttachment] = {}
        for key, value in (nads or {}).items():
            namespace, name = key.split("/")
            spec, annotations = value if isinstance(value, tuple) else (value, {})
            text = spec if isinstance(spec, str) else json.dumps(spec)
            self.nads[(namespace, name)] = NetworkAttachment(namespace, name, text, annotations)
        self.failure = failure
        self.reads: list[tuple[str, str]] = []

    def get_pod(self, namespace: str, name: str) -> Pod:
        raise AssertionError("resolve must not read the pod")

    def get_attachment(self, namespace: str, name: str) -> NetworkAttachment:
        self.reads.append((namespace, name))
        if self.failure is not None:
            raise self.failure
        try:
            return self.nads[(namespace, name)]
        except KeyError:
            raise NotFound(f"{namespace}/{name}", "not found") from None

    def set_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        raise AssertionError("resolve must not write status")


def meta(**changes: Any) -> config.MetaConf:
    doc = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "cluster", **changes}
    return config.load_meta_conf(json.dumps(doc))


def plugin(plugin_type: str = "macvlan", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "type": plugin_type, **extra}


CLUSTER = {"kube-system/cluster": plugin("flannel", name="cbr0")}


def pod(annotations: Mapping[str, str] | None = None, namespace: str = "team") -> Pod:
    return Pod(namespace=namespace, name="web", uid="u1", annotations=dict(annotations or {}))


def run(
    conf: config.MetaConf,
    source: FakeSource,
    the_pod: Pod,
    *,
    runtime_config: Mapping[str, Any] | None = None,
    override: Mapping[str, str] | None = None,
) -> list[Attachment]:
    return resolve.resolve(
        conf, the_pod, source, runtime_config=runtime_config or {}, ifname="eth0", pod_annotations_override=override
    )


def failure(conf: config.MetaConf, source: FakeSource, the_pod: Pod, **kwargs: Any) -> CniError:
    with pytest.raises(CniError) as info:
        run(conf, source, the_pod, **kwargs)
    return info.value


def summary(plan: list[Attachment]) -> list[tuple[str, str, bool]]:
    return [(a.network, a.ifname, a.is_cluster_network) for a in plan]


def write(directory: Path, name: str, doc: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


# --- the cluster network ---------------------------------------------------------------


def test_cluster_network_from_a_nad_in_the_netplex_namespace_keeps_cni_ifname() -> None:
    plan = run(meta(), FakeSource(CLUSTER), pod())
    assert summary(plan) == [("kube-system/cluster", "eth0", True)]
    assert plan[0].conflist.name == "cbr0"
    assert plan[0].origin == "nad"


def test_cluster_network_honours_multus_namespace() -> None:
    source = FakeSource({"multus/cluster": plugin("flannel")})
    plan = run(meta(multusNamespace="multus"), source, pod())
    assert plan[0].network == "multus/cluster"
    assert plan[0].conflist.name == "cluster"  # NPWG 3.4.2: a nameless spec.config gets the NAD's name


def test_cluster_network_from_conf_dir_by_name(tmp_path: Path) -> None:
    write(tmp_path, "10-flannel.conflist", {"cniVersion": "0.3.1", "name": "cluster", "plugins": [{"type": "flannel"}]})
    plan = run(meta(confDir=str(tmp_path)), FakeSource(), pod())
    assert summary(plan) == [("cluster", "eth0", True)]
    assert plan[0].conflist.version == "0.3.1"


def test_cluster_network_from_conf_dir_by_file_name(tmp_path: Path) -> None:
    write(tmp_path, "cluster.conf", {"cniVersion": "1.0.0", "name": "cbr0", "type": "bridge"})
    plan = run(meta(confDir=str(tmp_path)), FakeSource(), pod())
    assert plan[0].network == "cbr0"


def test_cluster_network_as_a_file_path(tmp_path: Path) -> None:
    calico = {"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [{"type": "calico"}]}
    path = write(tmp_path, "99-calico.conflist", calico)
    source = FakeSource()
    plan = run(meta(clusterNetwork=str(path)), source, pod())
    assert summary(plan) == [("k8s-pod-network", "eth0", True)]
    assert plan[0].origin == f"file:{path}"
    assert source.reads == []


def test_cluster_network_as_a_directory_takes_its_first_config(tmp_path: Path) -> None:
    write(tmp_path, "20-b.conf", plugin("bridge", name="second"))
    write(tmp_path, "10-a.conf", plugin("bridge", name="first"))
    write(tmp_path, "05-notes.txt", "not a config")
    assert run(meta(clusterNetwork=str(tmp_path)), FakeSource(), pod())[0].network == "first"


def test_missing_cluster_network_is_error_7_naming_it(tmp_path: Path) -> None:
    err = failure(meta(confDir=str(tmp_path)), FakeSource(), pod())
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "clusterNetwork" in err.msg and "kube-system/cluster" in err.msg


def test_missing_cluster_network_path_is_error_7(tmp_path: Path) -> None:
    err = failure(meta(clusterNetwork=str(tmp_path / "nope.conf")), FakeSource(), pod())
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert err.msg.startswith("clusterNetwork")


def test_delegates_mode_attaches_every_delegate_in_order() -> None:
    conf = meta(clusterNetwork="", delegates=[plugin("flannel", name="cbr0"), plugin("macvlan", name="side")])
    plan = run(conf, FakeSource(), pod(namespace="kube-system"))
    assert summary(plan) == [("cbr0", "eth0", True), ("side", "net1", False)]
    assert plan[0].origin == "delegates[0]"


def test_delegates_mode_names_unnamed_delegates() -> None:
    conf = meta(clusterNetwork="", delegates=[{"type": "weave-net"}, {"type": "macvlan"}])
    assert [a.network for a in run(conf, FakeSource(), pod())] == ["netplex", "netplex-1"]


def test_kubelet_runtime_config_goes_to_the_cluster_network_only() -> None:
    source = FakeSource({**CLUSTER, "team/side": plugin(capabilities={"portMappings": True})})
    runtime = {"portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}]}
    plan = run(meta(), source, pod({NETWORKS: "side"}), runtime_config=runtime)
    assert plan[0].capability_args == runtime
    assert plan[1].capability_args == {}


def test_containerd_spellings_are_normalised() -> None:
    runtime = {
        "portMappings": [{"HostPort": 80, "ContainerPort": 8080, "Protocol": "tcp", "HostIP": "0.0.0.0"}],
        "bandwidth": {"IngressRate": 1, "IngressBurst": 2, "EgressRate": 3, "EgressBurst": 4},
        "dns": {"Servers": ["10.96.0.10"], "Searches": ["svc.cluster.local"], "Options": ["ndots:5"]},
        "ipRanges": [[{"Subnet": "10.0.0.0/24", "RangeStart": "10.0.0.10", "Gateway": "10.0.0.1"}]],
        "io.kubernetes.cri.pod-annotations": {"Some.Key/X": "Value"},
        "cgroupPath": "/kubepods/x",
    }
    plan = run(meta(), FakeSource(CLUSTER), pod(), runtime_config=runtime)
    assert plan[0].capability_args == {
        "portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp", "hostIP": "0.0.0.0"}],
        "bandwidth": {"ingressRate": 1, "ingressBurst": 2, "egressRate": 3, "egressBurst": 4},
        "dns": {"servers": ["10.96.0.10"], "searches": ["svc.cluster.local"], "options": ["ndots:5"]},
        "ipRanges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "gateway": "10.0.0.1"}]],
        "io.kubernetes.cri.pod-annotations": {"Some.Key/X": "Value"},
        "cgroupPath": "/kubepods/x",
    }


def test_podman_spellings_pass_unchanged() -> None:
    runtime = {"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "udp"}]}
    assert resolve.normalize_runtime_config(runtime) == runtime


def test_capitalised_capability_name_is_normalised() -> None:
    assert resolve.normalize_runtime_config({"PortMappings": [{"HostPort": 1}]}) == {"portMappings": [{"hostPort": 1}]}


# --- the default-network override ---------------------------------------------------


def test_default_network_annotation_replaces_the_cluster_network() -> None:
    source = FakeSource({**CLUSTER, "kube-system/calico": plugin("calico")})
    plan = run(meta(), source, pod({DEFAULT_NETWORK: "calico"}), runtime_config={"mac": "x"})
    assert summary(plan) == [("kube-system/calico", "eth0", True)]
    assert plan[0].capability_args == {"mac": "x"}
    assert ("kube-system", "cluster") not in source.reads


def test_default_network_override_may_name_cni_ifname() -> None:
    source = FakeSource({"kube-system/calico": plugin("calico")})
    assert run(meta(), source, pod({DEFAULT_NETWORK: "calico@eth0"}))[0].ifname == "eth0"


def test_default_network_override_may_not_rename_the_cluster_interface() -> None:
    source = FakeSource({"kube-system/calico": plugin("calico")})
    err = failure(meta(), source, pod({DEFAULT_NETWORK: "calico@eth5"}))
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "eth5" in err.msg


def test_default_network_override_under_isolation_allows_the_netplex_namespace() -> None:
    source = FakeSource({"kube-system/calico": plugin("calico"), "other/calico": plugin("calico")})
    conf = meta(namespaceIsolation=True)
    assert run(conf, source, pod({DEFAULT_NETWORK: "calico"}))[0].network == "kube-system/calico"
    err = failure(conf, source, pod({DEFAULT_NETWORK: "other/calico"}))
    assert "namespace isolation" in err.msg and "other/calico" in err.msg


def test_missing_default_network_nad_is_error_7() -> None:
    err = failure(meta(), FakeSource(CLUSTER), pod({DEFAULT_NETWORK: "ghost"}))
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "kube-system/ghost" in err.msg


# --- defaultNetworks and system namespaces -----------------------------------------


def test_default_networks_follow_the_cluster_network(tmp_path: Path) -> None:
    conf_file = write(tmp_path / "files", "extra.conf", plugin("bridge", name="extra"))
    source = FakeSource({**CLUSTER, "kube-system/sidecar": plugin("macvlan")})
    conf = meta(defaultNetworks=["sidecar", str(conf_file)])
    plan = run(conf, source, pod({NETWORKS: "sidecar"}, namespace="kube-system"))
    assert summary(plan)[0] == ("kube-system/cluster", "eth0", True)
    assert summary(run(conf, source, pod())) == [
        ("kube-system/cluster", "eth0", True),
        ("kube-system/sidecar", "net1", False),
        ("extra", "net2", False),
    ]


def test_system_namespaces_get_no_default_networks() -> None:
    source = FakeSource({**CLUSTER, "kube-system/sidecar": plugin("macvlan"), "admin/x": plugin("macvlan")})
    conf = meta(defaultNetworks=["sidecar"], systemNamespaces=["kube-system", "admin"])
    assert summary(run(conf, source, pod(namespace="admin"))) == [("kube-system/cluster", "eth0", True)]
    # ...but their own selection still counts
    plan = run(conf, source, pod({NETWORKS: "x"}, namespace="admin"))
    assert summary(plan) == [("kube-system/cluster", "eth0", True), ("admin/x", "net1", False)]


def test_missing_default_network_is_error_7_naming_the_key(tmp_path: Path) -> None:
    err = failure(meta(defaultNetworks=["ghost"], confDir=str(tmp_path)), FakeSource(CLUSTER), pod())
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert err.msg.startswith("defaultNetworks.0")


# --- the selection annotation --------------------------------------------------------


def test_selected_networks_follow_in_order_with_positional_ifnames() -> None:
    source = FakeSource({**CLUSTER, "team/a": plugin(), "team/b": plugin(), "other/c": plugin()})
    plan = run(meta(), source, pod({NETWORKS: "a, other/c@data0, b"}))
    assert summary(plan) == [
        ("kube-system/cluster", "eth0", True),
        ("team/a", "net1", False),
        ("other/c", "data0", False),
        ("team/b", "net3", False),
    ]
    assert plan[2].selection is not None and plan[2].selection.interface == "data0"


def test_same_nad_twice_is_two_attachments_read_once() -> None:
    source = FakeSource({**CLUSTER, "team/a": plugin()})
    plan = run(meta(), source, pod({NETWORKS: "a,a"}))
    assert summary(plan)[1:] == [("team/a", "net1", False), ("team/a", "net2", False)]
    assert source.reads.count(("team", "a")) == 1


def test_requested_ifnames_that_clash_fail_naming_both() -> None:
    source = FakeSource({**CLUSTER, "team/a": plugin(), "team/b": plugin()})
    err = failure(meta(), source, pod({NETWORKS: "a@data0,b@data0"}))
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "'data0'" in err.msg and "team/a" in err.msg and "team/b" in err.msg


def test_requested_ifname_clashing_with_cni_ifname_fails() -> None:
    source = FakeSource({**CLUSTER, "team/a": plugin()})
    err = failure(meta(), source, pod({NETWORKS: "a@eth0"}))
    assert "'eth0'" in err.msg and "kube-system/cluster" in err.msg


def test_generated_ifname_clashing_with_a_requested_one_fails() -> None:
    source = FakeSource({**CLUSTER, "team/a": plugin(), "team/b": plugin()})
    err = failure(meta(), source, pod({NETWORKS: "a,b@net1"}))
    assert "'net1'" in err.msg


def test_missing_nad_is_error_7_naming_it() -> None:
    err = failure(meta(), FakeSource(CLUSTER), pod({NETWORKS: "ghost"}))
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "team/ghost" in err.msg and "not found" in err.msg


def test_selection_errors_surface_from_resolve() -> None:
    err = failure(meta(), FakeSource(CLUSTER), pod({NETWORKS: "Bad Name"}))
    assert err.msg.startswith("k8s.v1.cni.cncf.io/networks: element 0")


def test_annotations_from_the_runtime_replace_the_pods() -> None:
    source = FakeSource({**CLUSTER, "team/a": plugin(), "team/b": plugin()})
    plan = run(meta(), source, pod({NETWORKS: "a"}), override={NETWORKS: "b"})
    assert [a.network for a in plan] == ["kube-system/cluster", "team/b"]


def test_pod_without_namespace_is_in_default() -> None:
    source = FakeSource({**CLUSTER, "default/a": plugin()})
    assert run(meta(), source, pod({NETWORKS: "a"}, namespace=""))[1].network == "default/a"


def test_pod_annotations_from_runtime_config() -> None:
    annotations = {NETWORKS: "a", "other": "x"}
    assert resolve.pod_annotations_from_runtime({"io.kubernetes.cri.pod-annotations": annotations}) == annotations
    assert resolve.pod_annotations_from_runtime({}) is None
    assert resolve.pod_annotations_from_runtime({"io.kubernetes.cri.pod-annotations": {"a": 1}}) is None
    assert resolve.pod_annotations_from_runtime({"io.kubernetes.cri.pod-annotations": "x"}) is None


# --- namespace isolation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "changes"),
    [
        ("a", {}),  # own namespace
        ("team/a", {}),
        ("default/shared", {}),  # Multus: "default" is global unless globalNamespaces says otherwise
        ("tools/shared", {"globalNamespaces": "tools,default"}),
        ("tools/shared", {"globalNamespaces": ["tools"]}),
    ],
)
def test_namespace_isolation_allows(annotation: str, changes: dict[str, Any]) -> None:
    source = FakeSource({**CLUSTER, "team/a": plugin(), "default/shared": plugin(), "tools/shared": plugin()})
    plan = run(meta(namespaceIsolation=True, **changes), source, pod({NETWORKS: annotation}))
    assert len(plan) == 2


@pytest.mark.parametrize(
    ("annotation", "changes"),
    [
        ("other/secret", {}),
        ("default/shared", {"globalNamespaces": "tools"}),
        ("kube-system/other", {}),  # the netplex namespace is not global for the selection
    ],
)
def test_namespace_isolation_denies_naming_the_nad(annotation: str, changes: dict[str, Any]) -> None:
    nads = {"other/secret": plugin(), "default/shared": plugin(), "kube-system/other": plugin()}
    source = FakeSource({**CLUSTER, **nads})
    err = failure(meta(namespaceIsolation=True, **changes), source, pod({NETWORKS: annotation}))
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "namespace isolation" in err.msg and annotation in err.msg and "team/web" in err.msg
    assert tuple(annotation.split("/")) not in source.reads  # denied before reading


def test_without_isolation_any_namespace_is_allowed() -> None:
    source = FakeSource({**CLUSTER, "other/secret": plugin()})
    assert run(meta(), source, pod({NETWORKS: "other/secret"}))[1].network == "other/secret"


# --- NetworkAttachmentDefinition lookup (NPWG 3.4.1) -----------------------------------


def test_conflist_in_spec_config() -> None:
    conflist = {"cniVersion": "0.4.0", "name": "chain", "plugins": [{"type": "bridge"}, {"type": "tuning"}]}
    plan = run(meta(), FakeSource({**CLUSTER, "team/a": conflist}), pod({NETWORKS: "a"}))
    assert plan[1].conflist.name == "chain"
    assert [p["type"] for p in plan[1].conflist.plugins] == ["bridge", "tuning"]
    assert plan[1].cni_version == "0.4.0"


def test_spec_config_without_name_or_version_gets_them_injected() -> None:
    plan = run(meta(), FakeSource({**CLUSTER, "team/a": {"type": "macvlan"}}), pod({NETWORKS: "a"}))
    assert plan[1].conflist.name == "a"
    assert plan[1].conflist.cni_version == "1.0.0"


def test_nad_with_empty_spec_reads_a_conflist_before_a_conf(tmp_path: Path) -> None:
    write(tmp_path, "00-a.conf", plugin("bridge", name="a"))
    write(tmp_path, "50-a.conflist", {"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "macvlan"}]})
    plan = run(meta(confDir=str(tmp_path)), FakeSource({**CLUSTER, "team/a": ""}), pod({NETWORKS: "a"}))
    assert plan[1].conflist.plugins == [{"type": "macvlan"}]
    assert plan[1].network == "team/a"


def test_nad_with_empty_spec_reads_a_conf(tmp_path: Path) -> None:
    write(tmp_path, "10-other.conf", plugin("bridge", name="other"))
    write(tmp_path, "20-a.json", plugin("ipvlan", name="a"))
    plan = run(meta(confDir=str(tmp_path)), FakeSource({**CLUSTER, "team/a": ""}), pod({NETWORKS: "a"}))
    assert plan[1].conflist.plugins == [{"type": "ipvlan"}]


def test_nad_with_empty_spec_matches_the_json_name_not_the_file_name(tmp_path: Path) -> None:
    write(tmp_path, "a.conf", plugin("bridge", name="something-else"))
    err = failure(meta(confDir=str(tmp_path)), FakeSource({**CLUSTER, "team/a": ""}), pod({NETWORKS: "a"}))
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "team/a has no spec.config" in err.msg


def test_broken_files_in_conf_dir_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, "00-broken.conf", "{not json")
    write(tmp_path, "01-list-as-conf.conf", {"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "x"}]})
    write(tmp_path, "02-a.conf", plugin("bridge", name="a"))
    with caplog.at_level(logging.WARNING, logger="meta.netconfs"):
        plan = run(meta(confDir=str(tmp_path)), FakeSource({**CLUSTER, "team/a": ""}), pod({NETWORKS: "a"}))
    assert plan[1].conflist.plugins == [{"type": "bridge"}]
    assert "00-broken.conf" in caplog.text and "01-list-as-conf.conf" in caplog.text


@pytest.mark.parametrize(
    ("spec", "code", "needle"),
    [
        ("{not json", Code.DECODING_FAILURE, "NetworkAttachmentDefinition team/a: spec.config: not valid JSON"),
        ('["x"]', Code.DECODING_FAILURE, "spec.config: not a JSON object"),
        ('{"cniVersion": "1.0.0"}', Code.INVALID_NETWORK_CONFIG, "spec.config: type"),
        ('{"cniVersion": "1.0.0", "name": "x", "plugins": []}', Code.INVALID_NETWORK_CONFIG, "spec.config: plugins"),
        ('{"cniVersion": "9.9.9", "type": "x"}', Code.INCOMPATIBLE_VERSION, "spec.config"),
    ],
)
def test_bad_spec_config_names_the_nad(spec: str, code: int, needle: str) -> None:
    err = failure(meta(), FakeSource({**CLUSTER, "team/a": spec}), pod({NETWORKS: "a"}))
    assert err.code == code
    assert needle in err.msg, err.msg


def test_resource_name_annotation_is_carried() -> None:
    nad = (plugin("sriov"), {"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov_net"})
    plan = run(meta(), FakeSource({**CLUSTER, "team/a": nad}), pod({NETWORKS: "a"}))
    assert plan[1].resource_name == "intel.com/sriov_net"


def test_unreachable_source_is_try_again_later() -> None:
    err = failure(meta(), FakeSource(failure=Unavailable("api", "connection refused")), pod())
    assert err.code == Code.TRY_AGAIN_LATER
    assert "kube-system/cluster" in err.msg


def test_forbidden_read_names_the_object() -> None:
    err = failure(meta(), FakeSource(failure=Forbidden("api", "403")), pod())
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "RBAC" in err.msg


# --- capabilities and cni-args -----------------------------------------------------------


@pytest.mark.parametrize(
    ("element", "capability"),
    [
        ({"ips": ["10.0.0.5/24"]}, "ips"),
        ({"mac": "02:00:00:00:00:05"}, "mac"),
        ({"portMappings": [{"hostPort": 80, "containerPort": 80}]}, "portMappings"),
        ({"bandwidth": {"ingressRate": 1}}, "bandwidth"),
    ],
)
def test_request_without_the_capability_is_refused(element: dict[str, Any], capability: str) -> None:
    source = FakeSource({**CLUSTER, "team/a": plugin(capabilities={"other": True})})
    err = failure(meta(), source, pod({NETWORKS: json.dumps([{"name": "a", **element}])}))
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert f"none of its plugins declares the {capability!r} capability" in err.msg
    assert "team/a" in err.msg


def test_request_with_the_capability_reaches_the_attachment() -> None:
    conflist = {
        "cniVersion": "1.0.0",
        "name": "a",
        "plugins": [
            {"type": "macvlan", "capabilities": {"ips": True, "mac": True}, "ipam": {"type": "static"}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    element = {
        "name": "a",
        "ips": ["10.0.0.5/24"],
        "mac": "02:00:00:00:00:05",
        "portMappings": [{"hostPort": 80, "containerPort": 8080}],
        "infiniband-guid": "c2:11:22:33:44:55:66:77",
        "deviceID": "0000:03:00.1",
    }
    plan = run(meta(), FakeSource({**CLUSTER, "team/a": conflist}), pod({NETWORKS: json.dumps([element])}))
    assert plan[1].capability_args == {
        "ips": ["10.0.0.5/24"],
        "mac": "02:00:00:00:00:05",
        "portMappings": [{"hostPort": 80, "containerPort": 8080}],
        "infinibandGUID": "c2:11:22:33:44:55:66:77",
        "deviceID": "0000:03:00.1",
    }
    assert plan[1].device_id == "0000:03:00.1"


def test_cni_args_go_to_args_cni_of_every_plugin() -> None:
    conflist = {
        "cniVersion": "1.0.0",
        "name": "a",
        "plugins": [{"type": "bridge", "args": {"cni": {"keep": 1, "foo": "old"}, "other": True}}, {"type": "tuning"}],
    }
    source = FakeSource({**CLUSTER, "team/a": conflist})
    plan = run(meta(), source, pod({NETWORKS: json.dumps([{"name": "a", "cni-args": {"foo": "new", "n": 2}}])}))
    assert plan[1].conflist.plugins == [
        {"type": "bridge", "args": {"cni": {"keep": 1, "foo": "new", "n": 2}, "other": True}},
        {"type": "tuning", "args": {"cni": {"foo": "new", "n": 2}}},
    ]
    assert source.nads[("team", "a")].config == json.dumps(conflist)  # the NAD itself is untouched


def test_cni_args_apply_only_to_their_own_element() -> None:
    source = FakeSource({**CLUSTER, "team/a": plugin()})
    annotation = json.dumps([{"name": "a", "cni-args": {"x": 1}}, {"name": "a"}])
    plan = run(meta(), source, pod({NETWORKS: annotation}))
    assert plan[1].conflist.plugins[0]["args"] == {"cni": {"x": 1}}
    assert "args" not in plan[2].conflist.plugins[0]


# --- default-route claims -------------------------------------------------------------


def test_one_default_route_claim_per_family_is_fine() -> None:
    source = FakeSource({**CLUSTER, "team/a": plugin(), "team/b": plugin()})
    annotation = json.dumps([{"name": "a", "default-route": ["10.0.0.1"]}, {"name": "b", "default-route": ["fd00::1"]}])
    plan = run(meta(), source, pod({NETWORKS: annotation}))
    assert [str(gw) for gw in plan[1].default_route or ()] == ["10.0.0.1"]


def test_two_default_route_claims_for_one_family_fail() -> None:
    source = FakeSource({**CLUSTER, "team/a": plugin(), "team/b": plugin()})
    claims = [{"name": "a", "default-route": ["10.0.0.1"]}, {"name": "b", "default-route": ["10.1.0.1"]}]
    annotation = json.dumps(claims)
    err = failure(meta(), source, pod({NETWORKS: annotation}))
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "IPv4 default route" in err.msg


# --- netconfs --------------------------------------------------------------------------


def test_load_file_refuses_a_conflist_saved_as_conf(tmp_path: Path) -> None:
    path = write(tmp_path, "x.conf", {"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "a"}]})
    with pytest.raises(CniError) as info:
        netconfs.load_file(str(path))
    assert "conflist" in info.value.msg


def test_load_file_refuses_a_conf_saved_as_conflist(tmp_path: Path) -> None:
    path = write(tmp_path, "x.conflist", plugin(name="x"))
    with pytest.raises(CniError) as info:
        netconfs.load_file(str(path))
    assert "plugins" in info.value.msg


def test_load_file_refuses_huge_files(tmp_path: Path) -> None:
    path = write(tmp_path, "x.conf", json.dumps(plugin(name="x", pad="y" * (2 * 1024 * 1024))))
    with pytest.raises(CniError) as info:
        netconfs.load_file(str(path))
    assert info.value.code == Code.INVALID_NETWORK_CONFIG


def test_missing_conf_dir_holds_nothing(tmp_path: Path) -> None:
    assert netconfs.find_by_name(str(tmp_path / "nope"), "a") is None
    assert netconfs.first_in_dir(str(tmp_path / "nope")) is None


def test_a_bad_annotation_fails_before_any_read() -> None:
    source = FakeSource(CLUSTER)
    failure(meta(), source, pod({NETWORKS: "a,,b"}))
    assert source.reads == []


def test_the_auxiliary_chain_is_appended_to_the_cluster_networks_plugins(tmp_path: Path) -> None:
    (tmp_path / "aux.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "aux", "plugins": [{"type": "tuning"}, {"type": "sbr"}]}))
    plan = run(meta(confDir=str(tmp_path), auxiliaryCNIChainName="aux"), FakeSource(CLUSTER), pod())
    assert [p["type"] for p in plan[0].conflist.plugins] == ["flannel", "tuning", "sbr"]
    assert plan[0].conflist.name == "cbr0"


def test_a_default_network_override_without_a_nad_falls_back_to_confdir(tmp_path: Path) -> None:
    (tmp_path / "10-alt.conf").write_text(json.dumps({"cniVersion": "1.0.0", "name": "alt", "type": "bridge"}))
    plan = run(meta(confDir=str(tmp_path)), FakeSource(CLUSTER), pod({DEFAULT_NETWORK: "alt"}))
    assert plan[0].is_cluster_network and plan[0].conflist.name == "alt" and plan[0].ifname == "eth0"
