"""meta/config.py: the meta config's defaults, validation (the model and the JSON Schema),
unknown-key warnings and the readiness wait."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from cni.errors import CniError, Code
from meta import config

BASE: dict[str, Any] = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "flannel"}


def load(**changes: Any) -> config.MetaConf:
    return config.load_meta_conf(json.dumps({**BASE, **changes}).encode())


def failure(doc: Any, **kwargs: Any) -> CniError:
    raw = doc if isinstance(doc, (bytes, str)) else json.dumps(doc)
    with pytest.raises(CniError) as info:
        config.load_meta_conf(raw, **kwargs)
    return info.value


def test_defaults_are_multus_defaults() -> None:
    conf = load()
    assert conf.kubeconfig == ""
    assert conf.conf_dir == "/etc/cni/multus/net.d"
    assert conf.cni_dir == "/var/lib/cni/netplex"
    assert conf.bin_dir == "/opt/cni/bin"
    assert conf.log_to_stderr is True
    assert conf.namespace_isolation is False
    assert conf.global_namespaces == ("default",)
    assert conf.system_namespaces == ("kube-system",)
    assert conf.netplex_namespace == "kube-system"
    assert conf.readiness_indicator_file == ""
    assert conf.retry_delete_on_error is False
    assert conf.default_networks == ()


def test_netplex_keys_have_defaults() -> None:
    conf = load()
    assert conf.daemon_socket == ""
    assert conf.builtin_delegates is True
    assert conf.add_timeout == 60
    assert conf.delegate_timeout == 30
    assert conf.local_networks == "/etc/netplex/networks"
    assert conf.result_ips == "cluster"
    assert conf.uses_kubernetes is False


def test_every_multus_key_is_read() -> None:
    conf = load(
        kubeconfig="/etc/cni/net.d/multus.d/multus.kubeconfig",
        defaultNetworks=["sidecar", "/etc/cni/extra.conf"],
        confDir="/c",
        cniDir="/d",
        binDir="/b",
        logFile="/var/log/netplex.log",
        logLevel="debug",
        logToStderr=False,
        logOptions={"maxAge": 5},
        namespaceIsolation=True,
        globalNamespaces="default, shared ,tools",
        systemNamespaces=["kube-system", "admin"],
        multusNamespace="multus",
        readinessindicatorfile="/run/flannel/subnet.env",
        capabilities={"portMappings": True},
        retryDeleteOnError=True,
        runtimeConfig={"portMappings": [{"hostPort": 80, "containerPort": 80}]},
    )
    assert conf.uses_kubernetes
    assert conf.default_networks == ("sidecar", "/etc/cni/extra.conf")
    assert (conf.conf_dir, conf.cni_dir, conf.bin_dir) == ("/c", "/d", "/b")
    assert conf.log_file == "/var/log/netplex.log"
    assert conf.log_level == "debug"
    assert conf.log_to_stderr is False
    assert conf.namespace_isolation is True
    assert conf.global_namespaces == ("default", "shared", "tools")
    assert conf.system_namespaces == ("kube-system", "admin")
    assert conf.netplex_namespace == "multus"
    assert conf.readiness_indicator_file == "/run/flannel/subnet.env"
    assert conf.capabilities == {"portMappings": True}
    assert conf.retry_delete_on_error is True
    assert conf.runtime_config["portMappings"][0]["hostPort"] == 80


def test_every_netplex_key_is_read() -> None:
    conf = load(
        daemonSocket="/run/netplex/daemon.sock",
        builtinDelegates=False,
        addTimeout=90,
        delegateTimeout=12.5,
        localNetworks="/srv/networks",
        resultIPs="all",
        netplexNamespace="netplex",
    )
    assert conf.daemon_socket == "/run/netplex/daemon.sock"
    assert conf.builtin_delegates is False
    assert conf.add_timeout == 90
    assert conf.delegate_timeout == 12.5
    assert conf.local_networks == "/srv/networks"
    assert conf.result_ips == "all"
    assert conf.netplex_namespace == "netplex"


def test_global_namespaces_accepts_a_list() -> None:
    assert load(globalNamespaces=["a", "b"]).global_namespaces == ("a", "b")


def test_empty_global_namespaces_string_means_none() -> None:
    assert load(globalNamespaces="").global_namespaces == ()


def test_readiness_file_accepts_camel_case_too() -> None:
    assert load(readinessIndicatorFile="/x").readiness_indicator_file == "/x"


def test_same_namespace_under_both_names_is_fine() -> None:
    assert load(multusNamespace="ns", netplexNamespace="ns").netplex_namespace == "ns"


def test_conflicting_namespace_names_fail() -> None:
    err = failure({**BASE, "multusNamespace": "a", "netplexNamespace": "b"})
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "netplexNamespace" in err.msg


def test_unknown_key_is_a_warning_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="meta.config"):
        conf = load(surprise=1, mystery="x")
    assert conf.cluster_network == "flannel"
    assert "'surprise'" in caplog.text
    assert "'mystery'" in caplog.text


def test_known_keys_give_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="meta.config"):
        load(kubeconfig="/k", logOptions={}, multusNamespace="kube-system", readinessindicatorfile="",
             auxiliaryCNIChainName="", multusCacheDir="/var/lib/cni/multus")
    assert caplog.text == ""


def test_delegates_instead_of_cluster_network() -> None:
    doc = {**BASE, "delegates": [{"type": "flannel", "name": "cbr0"}, {"type": "macvlan", "name": "m"}]}
    del doc["clusterNetwork"]
    conf = config.load_meta_conf(json.dumps(doc))
    networks = conf.delegate_networks()
    assert [network.name for network in networks] == ["cbr0", "m"]
    assert networks[0].plugins == [{"type": "flannel"}]


def test_delegate_without_version_speaks_the_meta_version() -> None:
    conf = load(clusterNetwork="", delegates=[{"type": "flannel", "name": "cbr0"}])
    assert conf.delegate_networks()[0].cni_version == "1.0.0"


def test_delegate_conflist_is_accepted() -> None:
    conflist = {"cniVersion": "0.4.0", "name": "k8s-pod-network", "plugins": [{"type": "calico"}, {"type": "portmap"}]}
    conf = load(clusterNetwork="", delegates=[conflist])
    assert conf.delegate_networks()[0].version == "0.4.0"


def test_cluster_network_or_delegates_is_required() -> None:
    doc = dict(BASE)
    del doc["clusterNetwork"]
    err = failure(doc)
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert "clusterNetwork" in err.msg


def test_both_cluster_network_and_delegates_warns_and_keeps_cluster_network(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="meta.config"):
        conf = load(delegates=[{"type": "flannel"}])
    assert conf.cluster_network == "flannel"
    assert "delegates is ignored" in caplog.text


def test_default_networks_without_cluster_network_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="meta.config"):
        load(clusterNetwork="", delegates=[{"type": "flannel", "name": "a"}], defaultNetworks=["x"])
    assert "defaultNetworks" in caplog.text


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"delegates": [{"name": "x"}], "clusterNetwork": ""}, "delegates.0"),
        (
            {"delegates": [{"type": "a", "name": "ok"}, {"name": "b", "plugins": []}], "clusterNetwork": ""},
            "delegates.1",
        ),
        ({"namespaceIsolation": "yes"}, "namespaceIsolation"),
        ({"logLevel": "chatty"}, "logLevel"),
        ({"resultIPs": "some"}, "resultIPs"),
        ({"addTimeout": 0}, "addTimeout"),
        ({"delegateTimeout": -1}, "delegateTimeout"),
        ({"defaultNetworks": "a,b"}, "defaultNetworks"),
        ({"defaultNetworks": ["a", " "]}, "defaultNetworks.1"),
        ({"systemNamespaces": ["Kube_System"]}, "systemNamespaces.0"),
        ({"globalNamespaces": "ok,NOT OK"}, "globalNamespaces.1"),
        ({"multusNamespace": "../etc"}, "netplexNamespace"),
        ({"confDir": 5}, "confDir"),
        ({"kubeconfig": ["x"]}, "kubeconfig"),
    ],
)
def test_invalid_value_is_error_7_naming_the_key(changes: dict[str, Any], key: str) -> None:
    err = failure({**BASE, **changes})
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert err.msg.startswith(key), err.msg


@pytest.mark.parametrize("raw", [b"{", b"[]", b"\xff\xfe", b"null", b'"config"'])
def test_garbage_is_a_decoding_error(raw: bytes) -> None:
    assert failure(raw).code == Code.DECODING_FAILURE


def test_unsupported_version_is_error_1() -> None:
    assert failure({**BASE, "cniVersion": "0.2.0"}).code == Code.INCOMPATIBLE_VERSION


def test_mapping_input_is_accepted() -> None:
    assert config.load_meta_conf(dict(BASE)).name == "netplex"


def test_schema_ships_in_the_package() -> None:
    schema = config.schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "clusterNetwork" in schema["properties"]


def test_schema_accepts_what_the_model_accepts() -> None:
    good = [
        BASE,
        {**BASE, "globalNamespaces": "a,b", "systemNamespaces": ["kube-system"], "resultIPs": "all"},
        {"cniVersion": "0.3.1", "name": "n", "type": "multus", "delegates": [{"type": "flannel"}]},
        {"cniVersion": "0.3.1", "name": "n", "delegates": [{"name": "l", "plugins": [{"type": "x"}]}]},
    ]
    for doc in good:
        assert config.schema_errors(doc) == []
        config.load_meta_conf(json.dumps(doc), check_schema=True)


@pytest.mark.parametrize(
    "changes",
    [
        {"clusterNetwork": ""},
        {"logLevel": "chatty"},
        {"addTimeout": 0},
        {"systemNamespaces": ["Bad"]},
        {"delegates": [{"name": "x"}], "clusterNetwork": ""},
        {"resultIPs": 1},
    ],
)
def test_schema_rejects_what_the_model_rejects(changes: dict[str, Any]) -> None:
    doc = {**BASE, **changes}
    assert config.schema_errors(doc)
    with pytest.raises(CniError) as info:
        config.load_meta_conf(json.dumps(doc))
    assert info.value.code == Code.INVALID_NETWORK_CONFIG


def test_schema_errors_name_the_path() -> None:
    errors = config.schema_errors({**BASE, "systemNamespaces": ["ok", "Bad"]})
    assert errors[0].startswith("systemNamespaces.1:")


def test_check_schema_reports_error_7_naming_the_path() -> None:
    err = failure({**BASE, "addTimeout": "soon"}, check_schema=True)
    assert err.code == Code.INVALID_NETWORK_CONFIG
    assert err.msg.startswith("addTimeout:")


def test_no_readiness_file_is_ready_at_once() -> None:
    config.wait_for_readiness(load(), 0)


def test_existing_readiness_file_is_ready(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    marker.write_text("")
    config.wait_for_readiness(load(readinessindicatorfile=str(marker)), 0)
    assert config.is_ready(load(readinessindicatorfile=str(marker)))


def test_readiness_file_appearing_during_the_wait_is_ready(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:
            marker.write_text("")

    config.wait_for_readiness(load(readinessindicatorfile=str(marker)), 10, sleep=sleep)
    assert len(naps) == 3


def test_missing_readiness_file_is_try_again_later_after_the_timeout(tmp_path: Path) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    conf = load(readinessindicatorfile=str(tmp_path / "never"))
    with pytest.raises(CniError) as info:
        config.wait_for_readiness(conf, 2, sleep=sleep, clock=lambda: now[0])
    assert info.value.code == Code.TRY_AGAIN_LATER
    assert "readinessindicatorfile" in info.value.msg
    assert now[0] == pytest.approx(2)
    assert not config.is_ready(conf)
