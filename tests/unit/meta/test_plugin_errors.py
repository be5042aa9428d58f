"""meta/plugin.py and meta/attach.py in-process: the orchestration (order, rollback, undo,
the cache, GC) with recording fake delegates and a fake source, and garbage input (the
selection annotation, the config on stdin) checked with hypothesis: always a CNI error with
the right code, one JSON object on stdout, never a traceback, nothing left recorded."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cni import skel
from cni.errors import CniError, Code
from meta import cache, config, plugin, selection
from meta.source import Forbidden, NetworkAttachment, NotFound, Pod, SourceError, Unavailable

NETWORKS = "k8s.v1.cni.cncf.io/networks"
CRI_ANNOTATIONS = "io.kubernetes.cri.pod-annotations"
NETNS = "/run/netns/fake-pod"
POD_ARGS = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=uid-1"


class FakeDelegates:
    """In-process delegates of type `fake`: each call is recorded as (command, network,
    ifname); a network's config may say `"fail": "ADD"` (or DEL, CHECK), `"refuse": true`
    (error 7 on every command, as for a config the plugin cannot read) or `"boom": "ADD"`
    (an unexpected exception)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.gc_valid: dict[str, list[dict[str, str]]] = {}
        self.plugin = skel.Plugin(add=self._add, delete=self._del, check=self._check, gc=self._gc, about="fake")

    def lookup(self, plugin_type: str) -> skel.Plugin | None:
        return self.plugin if plugin_type == "fake" else None

    def _conf(self, args: skel.CmdArgs) -> dict[str, Any]:
        conf: dict[str, Any] = json.loads(args.stdin)
        self.calls.append((args.command, conf["name"], args.ifname))
        if conf.get("refuse"):
            raise CniError(Code.INVALID_NETWORK_CONFIG, "fake: cannot read this config")
        if conf.get("boom") == args.command:
            raise RuntimeError("fake exploded")
        if conf.get("fail") == args.command:
            raise CniError(Code.TRY_AGAIN_LATER, f"fake {args.command} failed")
        return conf

    def _add(self, args: skel.CmdArgs) -> dict[str, Any]:
        conf = self._conf(args)
        return {
            "cniVersion": conf["cniVersion"],
            "interfaces": [{"name": args.ifname, "mac": "02:00:00:00:00:01", "sandbox": args.netns}],
            "ips": [{"address": conf.get("ip", "10.0.0.2/24"), "interface": 0}],
        }

    def _del(self, args: skel.CmdArgs) -> None:
        self._conf(args)

    def _check(self, args: skel.CmdArgs) -> None:
        self._conf(args)

    def _gc(self, args: skel.CmdArgs) -> None:
        conf = self._conf(args)
        self.gc_valid[conf["name"]] = conf.get("cni.dev/valid-attachments", [])

    def commands(self, command: str) -> list[tuple[str, str]]:
        return [(network, ifname) for verb, network, ifname in self.calls if verb == command]


class FakeSource:
    """Pods and NADs from dicts; records network-status writes, fails them on demand."""

    def __init__(self, *, annotations: dict[str, str] | None = None, uid: str = "uid-1") -> None:
        self.pods = {("default", "web"): Pod("default", "web", uid=uid, annotations=annotations or {})}
        self.nads: dict[tuple[str, str], NetworkAttachment] = {}
        self.pod_error: SourceError | None = None
        self.status_error: Exception | None = None
        self.statuses: list[list[dict[str, Any]]] = []
        self.pod_reads = 0

    def nad(self, namespace: str, name: str, **conf: Any) -> None:
        doc = {"cniVersion": "1.0.0", "name": name, "type": "fake"} | conf
        self.nads[(namespace, name)] = NetworkAttachment(namespace, name, json.dumps(doc))

    def get_pod(self, namespace: str, name: str) -> Pod:
        self.pod_reads += 1
        if self.pod_error is not None:
            raise self.pod_error
        try:
            return self.pods[(namespace, name)]
        except KeyError:
            raise NotFound(f"pod {namespace}/{name}", "not found") from None

    def get_attachment(self, namespace: str, name: str) -> NetworkAttachment:
        try:
            return self.nads[(namespace, name)]
        except KeyError:
            raise NotFound(f"NetworkAttachmentDefinition {namespace}/{name}", "not found") from None

    def set_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        if self.status_error is not None:
            raise self.status_error
        self.statuses.append(status)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeDelegates:
    delegates = FakeDelegates()
    monkeypatch.setattr(plugin, "_builtins", lambda conf: delegates.lookup)
    return delegates


@pytest.fixture
def source() -> FakeSource:
    made = FakeSource(annotations={NETWORKS: "blue, green"})
    made.nad("kube-system", "cluster", ip="10.0.0.2/24")
    made.nad("default", "blue", ip="10.1.0.2/24")
    made.nad("default", "green", ip="10.2.0.2/24")
    return made


def meta_conf(tmp_path: Path, **keys: Any) -> config.MetaConf:
    doc = {
        "cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "cluster",
        "cniDir": str(tmp_path / "cni"), "binDir": str(tmp_path / "bin"), "confDir": str(tmp_path / "conf"),
        "localNetworks": str(tmp_path / "networks"),
    }
    return config.load_meta_conf(doc | keys)


def cmd(command: str = "ADD", *, container_id: str = "c1", cni_args: str = POD_ARGS) -> skel.CmdArgs:
    return skel.CmdArgs(
        command=command, container_id=container_id, netns=NETNS, ifname="eth0", args=cni_args, path=("/nonexistent",)
    )


def add(conf: config.MetaConf, source: FakeSource, **keys: Any) -> dict[str, Any]:
    result = plugin.add(conf, cmd(**keys), source_factory=lambda: source)
    return result.to_wire(conf.version)


def cached(conf: config.MetaConf) -> list[str]:
    directory = Path(conf.cni_dir) / "cache"
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def test_add_runs_every_delegate_in_order_and_records_it(
    tmp_path: Path, fakes: FakeDelegates, source: FakeSource
) -> None:
    conf = meta_conf(tmp_path)
    result = add(conf, source)
    assert fakes.commands("ADD") == [("cluster", "eth0"), ("blue", "net1"), ("green", "net2")]
    assert [iface["name"] for iface in result["interfaces"]] == ["eth0", "net1", "net2"]
    assert [ip["address"] for ip in result["ips"]] == ["10.0.0.2/24"]
    (status,) = source.statuses
    assert [(e["name"], e["interface"], e["ips"], e["default"]) for e in status] == [
        ("kube-system/cluster", "eth0", ["10.0.0.2"], True),
        ("default/blue", "net1", ["10.1.0.2"], False),
        ("default/green", "net2", ["10.2.0.2"], False),
    ]
    entry = cache.read(conf.cni_dir, "c1", "eth0")
    assert entry is not None and [a.state for a in entry.attachments] == ["added"] * 3


def test_failing_third_delegate_is_rolled_back_in_reverse(
    tmp_path: Path, fakes: FakeDelegates, source: FakeSource
) -> None:
    source.nad("default", "green", fail="ADD")
    conf = meta_conf(tmp_path)
    with pytest.raises(CniError) as caught:
        add(conf, source)
    assert caught.value.code == Code.TRY_AGAIN_LATER
    assert caught.value.msg == "default/web:default/green (net2): fake ADD failed"
    assert fakes.commands("DEL") == [("green", "net2"), ("blue", "net1"), ("cluster", "eth0")]
    assert cached(conf) == [] and source.statuses == []


def test_unexpected_exception_in_a_delegate_is_rolled_back_too(
    tmp_path: Path, fakes: FakeDelegates, source: FakeSource
) -> None:
    source.nad("default", "green", boom="ADD")
    conf = meta_conf(tmp_path)
    with pytest.raises(CniError) as caught:
        add(conf, source)
    assert caught.value.code == Code.INTERNAL and "fake exploded" in caught.value.msg
    assert fakes.commands("DEL") == [("green", "net2"), ("blue", "net1"), ("cluster", "eth0")]
    assert cached(conf) == []


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Unavailable("pod default/web", "connection refused"), Code.TRY_AGAIN_LATER),
        (NotFound("pod default/web", "replaced by another pod"), Code.INVALID_NETWORK_CONFIG),
        (RuntimeError("the client broke"), None),
    ],
)
def test_failed_network_status_write_undoes_every_attachment(
    tmp_path: Path, fakes: FakeDelegates, source: FakeSource, error: Exception, code: int | None
) -> None:
    source.status_error = error
    conf = meta_conf(tmp_path)
    with pytest.raises(Exception) as caught:
        add(conf, source)
    if code is None:
        assert caught.value is error
    else:
        assert isinstance(caught.value, CniError) and caught.value.code == code
        assert "network-status" in caught.value.msg
    assert fakes.commands("DEL") == [("green", "net2"), ("blue", "net1"), ("cluster", "eth0")]
    assert cached(conf) == []


def test_config_refused_by_a_never_added_delegate_does_not_block_del(
    tmp_path: Path, fakes: FakeDelegates, source: FakeSource
) -> None:
    source.nad("default", "green", refuse=True)
    conf = meta_conf(tmp_path)
    with pytest.raises(CniError) as caught:
        add(conf, source)
    assert caught.value.code == Code.INVALID_NETWORK_CONFIG
    assert cached(conf) == []  # nothing the runtime's DEL would trip over forever
    plugin.delete(conf, cmd("DEL"))


def test_del_failure_keeps_what_failed_for_the_next_del(
    tmp_path: Path, fakes: FakeDelegates, source: FakeSource
) -> None:
    source.nad("default", "blue", fail="DEL")
    conf = meta_conf(tmp_path)
    add(conf, source)
    with pytest.raises(CniError) as caught:
        plugin.delete(conf, cmd("DEL"))
    assert caught.value.code == Code.TRY_AGAIN_LATER
    assert "default/blue (net1)" in caught.value.msg
    assert fakes.commands("DEL") == [("green", "net2"), ("blue", "net1"), ("cluster", "eth0")]
    entry = cache.read(conf.cni_dir, "c1", "eth0")
    assert entry is not None and [a.network for a in entry.attachments] == ["default/blue"]
    source.nad("default", "blue")  # the NAD's change does not matter: DEL reads the cache
    with pytest.raises(CniError):
        plugin.delete(conf, cmd("DEL"))
    entry = cache.read(conf.cni_dir, "c1", "eth0")
    assert entry is not None
    entry.attachments[0].conflist["plugins"][0].pop("fail")  # the delegate recovered
    cache.write(conf.cni_dir, entry)
    plugin.delete(conf, cmd("DEL"))
    assert cached(conf) == []


def test_del_of_nothing_recorded_succeeds(tmp_path: Path, fakes: FakeDelegates) -> None:
    plugin.delete(meta_conf(tmp_path), cmd("DEL"))
    assert fakes.calls == []


def test_check_covers_every_attachment(tmp_path: Path, fakes: FakeDelegates, source: FakeSource) -> None:
    conf = meta_conf(tmp_path)
    add(conf, source)
    plugin.check(conf, cmd("CHECK"))
    assert fakes.commands("CHECK") == [("cluster", "eth0"), ("blue", "net1"), ("green", "net2")]


def test_gc_dels_stale_sandboxes_and_collects_every_network(
    tmp_path: Path, fakes: FakeDelegates, source: FakeSource
) -> None:
    for namespace, name in list(source.nads):
        source.nad(namespace, name, cniVersion="1.1.0")
    conf = meta_conf(tmp_path, cniVersion="1.1.0")
    add(conf, source, container_id="stale")
    source.pods[("default", "web")] = Pod("default", "web", uid="uid-1", annotations={NETWORKS: "blue"})
    add(conf, source, container_id="keep")
    fakes.calls.clear()
    valid = {"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}
    plugin.gc(meta_conf(tmp_path, cniVersion="1.1.0", **valid), cmd("GC"))
    assert fakes.commands("DEL") == [("green", "net2"), ("blue", "net1"), ("cluster", "eth0")]
    assert cached(conf) == ["keep-eth0.json"]
    assert fakes.gc_valid == {
        "cluster": [{"containerID": "keep", "ifname": "eth0"}],
        "blue": [{"containerID": "keep", "ifname": "net1"}],
        "green": [],  # only the stale sandbox used it: collected with nothing valid
    }


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("pod default/web", "not found"), Code.UNKNOWN_CONTAINER),
        (Unavailable("pod default/web", "connection refused"), Code.TRY_AGAIN_LATER),
        (Forbidden("pod default/web", "HTTP 403"), Code.INVALID_ENVIRONMENT),
    ],
)
def test_pod_read_failures_have_their_codes(
    tmp_path: Path, fakes: FakeDelegates, source: FakeSource, error: SourceError, code: int
) -> None:
    source.pod_error = error
    with pytest.raises(CniError) as caught:
        add(meta_conf(tmp_path), source)
    assert caught.value.code == code
    assert fakes.calls == []


def test_uid_mismatch_is_unknown_container(tmp_path: Path, fakes: FakeDelegates, source: FakeSource) -> None:
    with pytest.raises(CniError) as caught:
        add(meta_conf(tmp_path), source, cni_args=POD_ARGS.replace("uid-1", "uid-2"))
    assert caught.value.code == Code.UNKNOWN_CONTAINER and "UID" in caught.value.msg
    assert fakes.calls == [] and cached(meta_conf(tmp_path)) == []


def test_containerd_annotations_skip_the_pod_read(tmp_path: Path, fakes: FakeDelegates, source: FakeSource) -> None:
    conf = meta_conf(tmp_path, runtimeConfig={CRI_ANNOTATIONS: {NETWORKS: "green"}})
    add(conf, source)
    assert source.pod_reads == 0
    assert fakes.commands("ADD") == [("cluster", "eth0"), ("green", "net1")]


def test_a_container_without_pod_name_gets_the_cluster_network_without_status(
    tmp_path: Path, fakes: FakeDelegates, source: FakeSource
) -> None:
    add(meta_conf(tmp_path), source, cni_args="")
    assert fakes.commands("ADD") == [("cluster", "eth0")]
    assert source.pod_reads == 0 and source.statuses == []


def test_status_without_the_readiness_file_is_not_available(tmp_path: Path) -> None:
    doc = {"cniVersion": "1.1.0", "name": "netplex", "type": "netplex", "clusterNetwork": "cluster",
           "readinessindicatorfile": str(tmp_path / "ready")}
    args = skel.CmdArgs(command="STATUS", stdin=json.dumps(doc).encode())
    with pytest.raises(CniError) as caught:
        plugin.cmd_status(args)
    assert caught.value.code == Code.NOT_AVAILABLE and str(tmp_path / "ready") in caught.value.msg
    (tmp_path / "ready").write_text("")
    plugin.cmd_status(args)


# -- garbage in ------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_ELEMENT_KEYS = ("name", "namespace", "interface", "ips", "mac", "default-route", "portMappings", "bandwidth",
                 "cni-args", "deviceID", "infiniband-guid", "ipam-claim-reference", "interfaceRequest")
_ELEMENT = st.dictionaries(st.sampled_from(_ELEMENT_KEYS) | st.text(max_size=8), _JSON, max_size=5)
_VALID_ANNOTATION = json.dumps(
    [{"name": "blue", "interface": "b0", "ips": ["10.1.0.9/24"], "mac": "02:00:00:00:00:09"}]
)
ANNOTATIONS = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="abz09-./@, \t[]{}\"", max_size=60),
    st.lists(_ELEMENT, max_size=4).map(json.dumps),
    _JSON.map(json.dumps),
    st.integers(0, len(_VALID_ANNOTATION)).map(lambda n: _VALID_ANNOTATION[:n]),
)


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> FakeDelegates:
    """Fake delegates whose every network refuses its config: if a garbage annotation ever
    got as far as the delegates, the ADD would fail with 7 and must leave nothing recorded."""
    delegates = FakeDelegates()
    monkeypatch.setattr(plugin, "_builtins", lambda conf: delegates.lookup)
    return delegates


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(annotation=ANNOTATIONS)
def test_garbage_annotation_is_error_6_or_7_and_records_nothing(
    tmp_path: Path, refusing: FakeDelegates, annotation: str
) -> None:
    refusing.calls.clear()  # one fixture for every example hypothesis runs
    source = FakeSource(annotations={NETWORKS: annotation})
    source.nad("kube-system", "cluster", refuse=True)
    conf = meta_conf(tmp_path)
    try:
        selection.parse_selection(annotation, pod_namespace="default")
    except CniError as err:
        parse_error: CniError | None = err
    else:
        parse_error = None
    with pytest.raises(CniError) as caught:
        add(conf, source)
    assert caught.value.code in (Code.DECODING_FAILURE, Code.INVALID_NETWORK_CONFIG), caught.value
    if parse_error is not None:
        assert caught.value.code == parse_error.code and NETWORKS in caught.value.msg
        assert refusing.calls == []
    assert cached(conf) == [] and source.statuses == []


def run_plugin(stdin: bytes, environ: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    code = skel.run(plugin.PLUGIN, environ=environ, stdin=io.BytesIO(stdin), stdout=out)
    return code, out.getvalue()


@pytest.fixture
def quiet_skel(monkeypatch: pytest.MonkeyPatch) -> None:
    """skel.run configures logging once per process: not in the test process."""
    monkeypatch.setattr(skel, "_configured", True)


def base_doc(tmp_path: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": "cluster",
        "cniDir": str(tmp_path / "cni"), "binDir": str(tmp_path / "bin"), "confDir": str(tmp_path / "conf"),
        "localNetworks": str(tmp_path / "networks"),
    }


_MUTABLE_KEYS = ("cniVersion", "name", "type", "clusterNetwork", "defaultNetworks", "delegates", "namespaceIsolation",
                 "globalNamespaces", "systemNamespaces", "multusNamespace", "netplexNamespace", "addTimeout",
                 "delegateTimeout", "resultIPs", "capabilities", "runtimeConfig", "builtinDelegates", "logLevel")
ENVIRON = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": NETNS, "CNI_IFNAME": "eth0",
           "CNI_PATH": "/nonexistent", "CNI_ARGS": "K8S_POD_NAME=web"}


@st.composite
def garbage_configs(draw: Callable[..., Any], doc: dict[str, Any]) -> bytes:
    text = json.dumps(doc)
    kind = draw(st.sampled_from(["bytes", "truncated", "mutated", "json"]))
    if kind == "bytes":
        data: bytes = draw(st.binary(max_size=300))
        return data
    if kind == "truncated":
        return text[: draw(st.integers(0, len(text) - 1))].encode()
    if kind == "json":
        return json.dumps(draw(_JSON)).encode()
    key = draw(st.sampled_from(_MUTABLE_KEYS))
    return json.dumps(doc | {key: draw(_JSON)}).encode()


@pytest.fixture
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("garbage")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_garbage_config_is_one_error_object_never_a_traceback(
    scratch: Path, quiet_skel: None, refusing: FakeDelegates, data: st.DataObject
) -> None:
    stdin = data.draw(garbage_configs(base_doc(scratch)))
    assume(stdin != json.dumps(base_doc(scratch)).encode())
    code, out = run_plugin(stdin, ENVIRON)
    assert code == 1, out
    assert out.endswith("\n") and out.count("\n") == 1, out
    doc = json.loads(out)
    assert set(doc) <= {"cniVersion", "code", "msg", "details"} and doc["msg"], doc
    # 1 version, 6 bad JSON, 7 a bad key (the cluster network is nowhere to be found).
    assert doc["code"] in (Code.INCOMPATIBLE_VERSION, Code.DECODING_FAILURE, Code.INVALID_NETWORK_CONFIG), doc
    assert "Traceback" not in out
    assert not (scratch / "cni").exists() or not os.listdir(scratch / "cni" / "cache")


@pytest.mark.parametrize(
    ("mangle", "code", "named"),
    [
        (lambda doc: json.dumps(doc).encode()[:20], Code.DECODING_FAILURE, "not valid JSON"),
        (lambda doc: b"[]", Code.DECODING_FAILURE, "not a JSON object"),
        (lambda doc: json.dumps(doc | {"cniVersion": "0.2.0"}).encode(), Code.INCOMPATIBLE_VERSION, "0.2.0"),
        (lambda doc: json.dumps(doc | {"namespaceIsolation": 1}).encode(), Code.INVALID_NETWORK_CONFIG,
         "namespaceIsolation"),
        (lambda doc: json.dumps(doc | {"systemNamespaces": ["Not_A_Namespace"]}).encode(),
         Code.INVALID_NETWORK_CONFIG, "systemNamespaces.0"),
        (lambda doc: json.dumps(doc | {"resultIPs": "some"}).encode(), Code.INVALID_NETWORK_CONFIG, "resultIPs"),
    ],
)
def test_bad_config_names_the_key(
    tmp_path: Path, quiet_skel: None, mangle: Callable[[dict[str, Any]], bytes], code: int, named: str
) -> None:
    status, out = run_plugin(mangle(base_doc(tmp_path)), ENVIRON)
    doc = json.loads(out)
    assert (status, doc["code"]) == (1, code), doc
    assert named in doc["msg"], doc


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"CNI_CONTAINERID": "a/../../b"}, "CNI_CONTAINERID"),
        ({"CNI_IFNAME": "x" * 16}, "CNI_IFNAME"),
        ({"CNI_NETNS": "netns"}, "CNI_NETNS"),
        ({"CNI_ARGS": "=x"}, "CNI_ARGS"),
    ],
)
def test_bad_environment_is_error_4(tmp_path: Path, quiet_skel: None, change: dict[str, str], named: str) -> None:
    status, out = run_plugin(json.dumps(base_doc(tmp_path)).encode(), ENVIRON | change)
    doc = json.loads(out)
    assert (status, doc["code"]) == (1, Code.INVALID_ENVIRONMENT) and named in doc["msg"], doc
