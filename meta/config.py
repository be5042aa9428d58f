"""The meta-plugin's own config (the netplex/Multus conflist entry on stdin): its model with
Multus's keys, defaults and meaning plus netplex's own keys, loading it with CNI errors
that name the key, the JSON Schema shipped for `netplex validate`, and the bounded wait
for the cluster network's readiness indicator file.

An unknown key is logged as a warning and ignored, never an error. This module reads no
files except the readiness indicator and the packaged schema.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import msgspec

from cni import config as cni_config
from cni import skel
from cni.config import Conflist, NetConf
from cni.errors import CniError, Code
from meta import cachepath, model, multuskeys, netconfs, pathrules

log = logging.getLogger(__name__)

DEFAULT_CONF_DIR = "/etc/cni/multus/net.d"  # Multus's default, so a Multus confDir just works
DEFAULT_CNI_DIR = cachepath.DEFAULT_CNI_DIR
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_MULTUS_CACHE_DIR = cachepath.DEFAULT_MULTUS_CACHE_DIR
DEFAULT_NAMESPACE = "kube-system"
DEFAULT_LOCAL_NETWORKS = "/etc/netplex/networks"
DEFAULT_ADD_TIMEOUT = 60.0
DEFAULT_DELEGATE_TIMEOUT = 30.0
DEFAULT_POD_RESOURCES_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"  # meta.devices
DEFAULT_DEVICE_INFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo"  # NPWG Device Information spec
SCHEMA_RESOURCE = "netplex-conf.schema.json"
LOG_LEVELS = ("debug", "verbose", "info", "warning", "error", "panic")

# Keys of the meta config that CNI, Multus or netplex define; anything else is warned about.
_KNOWN_KEYS = frozenset(
    {
        "cniVersion", "cniVersions", "name", "type", "capabilities", "ipam", "dns", "args",
        "runtimeConfig", "prevResult",
        "kubeconfig", "clusterNetwork", "delegates", "defaultNetworks", "confDir", "cniDir", "binDir",
        "logFile", "logLevel", "logToStderr", "logOptions", "namespaceIsolation", "globalNamespaces",
        "systemNamespaces", "multusNamespace", "netplexNamespace", "readinessindicatorfile",
        "readinessIndicatorFile", "retryDeleteOnError",
        "daemonSocket", "builtinDelegates", "addTimeout", "delegateTimeout", "localNetworks", "resultIPs",
        "podResourcesSocket", "deviceInfoDir",
        "multusCacheDir", "auxiliaryCNIChainName",
        "ipamRoots",
    }
)


Timeout = Annotated[float, msgspec.Meta(gt=0, le=3600)]
# Keys with a second spelling: (the field's wire name, the other spelling). The first wins.
_ALIASES = (("netplexNamespace", "multusNamespace"), ("readinessindicatorfile", "readinessIndicatorFile"))


class MetaConf(NetConf, frozen=True, kw_only=True):
    """The meta-plugin config. Field defaults are Multus's where Multus has the key.
    `load_meta_conf` reads the second spellings (`multusNamespace`, `readinessIndicatorFile`)
    and Multus's comma-separated `globalNamespaces` into these fields first."""

    kubeconfig: str = ""
    cluster_network: str = msgspec.field(default="", name="clusterNetwork")
    delegates: list[dict[str, Any]] = []
    default_networks: tuple[str, ...] = msgspec.field(default=(), name="defaultNetworks")
    conf_dir: str = msgspec.field(default=DEFAULT_CONF_DIR, name="confDir")
    cni_dir: str = msgspec.field(default=DEFAULT_CNI_DIR, name="cniDir")
    bin_dir: str = msgspec.field(default=DEFAULT_BIN_DIR, name="binDir")
    log_file: str = msgspec.field(default="", name="logFile")
    log_level: Literal["", "debug", "verbose", "info", "warning", "error", "panic"] = msgspec.field(
        default="", name="logLevel"
    )
    log_to_stderr: bool = msgspec.field(default=True, name="logToStderr")
    log_options: dict[str, Any] | None = msgspec.field(default=None, name="logOptions")  # rotation: cni/logrotate.py
    namespace_isolation: bool = msgspec.field(default=False, name="namespaceIsolation")
    # Multus: without globalNamespaces, isolated pods may still use NADs in "default".
    global_namespaces: tuple[str, ...] = msgspec.field(default=("default",), name="globalNamespaces")
    system_namespaces: tuple[str, ...] = msgspec.field(default=("kube-system",), name="systemNamespaces")
    netplex_namespace: str = msgspec.field(default=DEFAULT_NAMESPACE, name="netplexNamespace")
    readiness_indicator_file: str = msgspec.field(default="", name="readinessindicatorfile")
    retry_delete_on_error: bool = msgspec.field(default=False, name="retryDeleteOnError")
    # netplex's own keys
    daemon_socket: str = msgspec.field(default="", name="daemonSocket")
    builtin_delegates: bool = msgspec.field(default=True, name="builtinDelegates")
    add_timeout: Timeout = msgspec.field(default=DEFAULT_ADD_TIMEOUT, name="addTimeout")
    delegate_timeout: Timeout = msgspec.field(default=DEFAULT_DELEGATE_TIMEOUT, name="delegateTimeout")
    local_networks: str = msgspec.field(default=DEFAULT_LOCAL_NETWORKS, name="localNetworks")
    result_ips: Literal["cluster", "all"] = msgspec.field(default="cluster", name="resultIPs")
    pod_resources_socket: str = msgspec.field(default=DEFAULT_POD_RESOURCES_SOCKET, name="podResourcesSocket")
    device_info_dir: str = msgspec.field(default=DEFAULT_DEVICE_INFO_DIR, name="deviceInfoDir")
    # Where Multus kept its cache (its `cniDir`): sandboxes it attached are DELed from there.
    multus_cache_dir: str = msgspec.field(default=DEFAULT_MULTUS_CACHE_DIR, name="multusCacheDir")
    # A conflist in confDir run after the cluster network on its interface (meta/auxchain.py).
    auxiliary_cni_chain_name: str = msgspec.field(default="", name="auxiliaryCNIChainName")
    # where IPAM dataDirs may live (meta/pathrules.py)
    ipam_roots: tuple[str, ...] = msgspec.field(default=(), name="ipamRoots")

    @property
    def uses_kubernetes(self) -> bool:
        """True when a kubeconfig is set; otherwise `localNetworks` stands in for the API."""
        return bool(self.kubeconfig)

    def delegate_networks(self) -> list[Conflist]:
        """`delegates` parsed: each a conf or a conflist (the first is the cluster network)."""
        return [self._delegate(index) for index in range(len(self.delegates))]

    def _delegate(self, index: int) -> Conflist:
        # Multus's examples leave delegates unnamed; CNI needs a name (IPAM and cache state
        # are keyed by it), so an unnamed one gets a stable name: the meta config's, numbered.
        # A delegate speaks the meta config's cniVersion unless it names its own.
        base = self.name or "netplex"
        return netconfs.parse_config(
            self.delegates[index],
            where=f"delegates.{index}",
            default_name=base if index == 0 else f"{base}-{index}",
            cni_version=self.cni_version,
        )


def load_meta_conf(raw: bytes | str | Mapping[str, Any], *, check_schema: bool = False) -> MetaConf:
    """Parse and check the meta config. Bad JSON is error 6; a bad or missing value is
    error 7 naming the key (`delegates.1.type`). `check_schema` also runs the packaged
    JSON Schema (what `netplex validate` does; the CNI path skips jsonschema's import)."""
    doc = dict(raw) if isinstance(raw, Mapping) else skel.load_json(raw)
    try:
        doc = multuskeys.plugin_aliases(doc)  # Multus's thick-mode keys: aliases, or refused
    except multuskeys.RefusedKey as exc:
        raise CniError(Code.INVALID_NETWORK_CONFIG, str(exc)) from exc
    pathrules.check_config_paths(doc)  # error 7 naming the key: no relative or empty cniDir
    if check_schema:
        problems = schema_errors(doc)
        if problems:
            raise CniError(Code.INVALID_NETWORK_CONFIG, problems[0], "; ".join(problems))
    conf = cni_config.load_conf(MetaConf, _spelled_once(doc))
    conf.version  # noqa: B018 - raises error 1 for a version we do not speak
    _check(conf)
    skel.accept_log_file()  # the config passed: its logFile may be created now
    for key in sorted(set(doc) - _KNOWN_KEYS):
        log.warning("netplex config: unknown key %r ignored", key)
    return conf


def schema() -> dict[str, Any]:
    """The JSON Schema of the meta config, as shipped in the package."""
    return _schema()


def schema_errors(doc: Any) -> list[str]:
    """Every JSON Schema violation of `doc`, each as `path: message` (empty when valid)."""
    import jsonschema  # type: ignore[import-untyped, unused-ignore]  # only `netplex validate` and tests pay for the import

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda err: list(err.absolute_path))
    return [f"{_json_path(err.absolute_path)}: {err.message}" for err in errors]


def is_ready(conf: MetaConf) -> bool:
    """True when no readiness indicator is configured or the file exists."""
    return not conf.readiness_indicator_file or os.path.exists(conf.readiness_indicator_file)


def wait_for_readiness(
    conf: MetaConf,
    timeout: float,
    *,
    interval: float = 0.25,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait up to `timeout` seconds for `readinessindicatorfile` (Multus waits 45 s);
    error 11 when it does not appear: the cluster network is not ready yet."""
    deadline = clock() + timeout
    while not is_ready(conf):
        remaining = deadline - clock()
        if remaining <= 0:
            raise CniError(
                Code.TRY_AGAIN_LATER,
                f"readinessindicatorfile {conf.readiness_indicator_file!r} did not appear within {timeout:g}s: "
                "the cluster network is not ready",
            )
        sleep(min(interval, remaining))


def _spelled_once(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with each key's second spelling read into its first (which wins when both are
    there; the two namespace keys must then agree) and Multus's comma-separated
    `globalNamespaces` string as a list."""
    ours, theirs = doc.get("netplexNamespace"), doc.get("multusNamespace")
    if ours is not None and theirs is not None and ours != theirs:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            "netplexNamespace: netplexNamespace and multusNamespace (its alias) disagree; set one",
        )
    doc = dict(doc)
    for first, second in _ALIASES:
        if second in doc:
            value = doc.pop(second)
            doc.setdefault(first, value)
    namespaces = doc.get("globalNamespaces")
    if isinstance(namespaces, str):
        doc["globalNamespaces"] = [part.strip() for part in namespaces.split(",") if part.strip()]
    return doc


def _check(conf: MetaConf) -> None:
    """What the model's types cannot say: the cluster network, delegates and namespaces."""
    if not conf.cluster_network and not conf.delegates:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "clusterNetwork: set clusterNetwork or delegates")
    if conf.cluster_network and conf.delegates:
        log.warning("netplex config: clusterNetwork is set, so delegates is ignored (as Multus does)")
    elif conf.default_networks and not conf.cluster_network:
        log.warning("netplex config: defaultNetworks needs clusterNetwork; ignored with delegates (as Multus does)")
    if not conf.cluster_network:
        conf.delegate_networks()  # each delegate must be a valid conf or conflist
    for index, name in enumerate(conf.default_networks):
        if not name.strip():
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"defaultNetworks.{index}: empty network name")
    if not model.is_namespace(conf.netplex_namespace):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"netplexNamespace: {conf.netplex_namespace!r} is not a namespace")
    for key, names in (("globalNamespaces", conf.global_namespaces), ("systemNamespaces", conf.system_namespaces)):
        for index, name in enumerate(names):
            if not model.is_namespace(name):
                raise CniError(Code.INVALID_NETWORK_CONFIG, f"{key}.{index}: {name!r} is not a namespace")


def _json_path(path: Any) -> str:
    return ".".join(str(part) for part in path) or "config"


@functools.cache
def _schema() -> dict[str, Any]:
    from importlib import resources  # `netplex validate` only: not on the CNI path

    text = resources.files("meta.schema").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
