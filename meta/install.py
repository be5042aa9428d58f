"""`netplex install`: put netplex on a node and keep its CNI config current, as Multus's
thin entrypoint does with `--multus-conf-file=auto`.

Once: copy a release under `--lib-dir` that carries its own interpreter, standard
library and shared libraries (meta/launcher/bundle.py; or, with `--node-python`, check
the node's CPython and copy only netplex and its dependencies), write the launchers
(`netplex`, `netplex-bridge`, ...) into the CNI bin dir. Then, on every
change (a poll of file metadata, every `--interval` seconds, until SIGTERM):

- find the primary CNI config: the alphabetically first `.conf`/`.conflist`/`.json` in
  the conf dir that loads, other than ours and other meta-plugins' (or `--primary-config`);
- wait for the readiness indicator file, if one is given, before writing anything;
- write the kubeconfig for thin mode from the pod's service account (token, CA,
  KUBERNETES_SERVICE_HOST/PORT), again whenever the token or CA rotates;
- write `00-netplex.conflist`: the primary config inlined as `delegates[0]` (the cluster
  network, as Multus auto-config does), its plugins' capabilities plus containerd's
  `io.kubernetes.cri.pod-annotations`, its cniVersion (1.0.0 when it names none; 1.1.0
  only when it uses 1.1.0, since runtimes reject 1.1.0 results otherwise), and the keys of
  `--config` (the ConfigMap).

Every file is written atomically and only when its bytes change. The conflist is never
removed, on shutdown or otherwise: a node without it would silently fall back to the
next config in the directory, and pods would lose their networks."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cni import store
from cni import version as cni_version
from cni.errors import CniError
from meta import config, netconfs
from meta.launcher import bundle, node, runtime
from meta.launcher.node import HostRoot, InstallError
from meta.node import hostpath

log = logging.getLogger(__name__)

CONFLIST_NAME = "00-netplex.conflist"
NETWORK_NAME = "netplex-cni-network"
KUBECONFIG_SUBPATH = ("netplex.d", "netplex.kubeconfig")
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
POD_ANNOTATIONS_CAPABILITY = "io.kubernetes.cri.pod-annotations"  # containerd passes annotations for it
DEFAULT_CNI_VERSION = "1.0.0"
META_PLUGIN_TYPES = frozenset({"netplex", "multus", "multus-shim"})
# Keys of the netplex entry the installer decides; `--config` may set any other MetaConf key.
RESERVED_KEYS = frozenset({"type", "name", "cniVersion", "cniVersions", "capabilities", "delegates"})


@dataclasses.dataclass(frozen=True)
class InstallOptions:
    """`netplex install`'s options. Directories are as the installer sees them; the
    readiness file and daemon socket are node paths, as they appear in the config."""

    cni_bin_dir: str = "/host/opt/cni/bin"
    cni_conf_dir: str = "/host/etc/cni/net.d"
    host_root: str = "/host"
    lib_dir: str = "/host/opt/netplex"
    node_python: str = ""  # "": the release's own interpreter; "auto" or a node path: the node's CPython
    readiness_indicator_file: str = ""
    daemon_socket: str = ""
    kubeconfig_out: str = "auto"  # "auto": <conf dir>/netplex.d/netplex.kubeconfig inside a pod; "none"
    service_account_dir: str = SERVICE_ACCOUNT_DIR
    primary_config: str = ""
    cni_version: str = ""
    config_file: str = ""
    once: bool = False
    interval: float = 2.0
    timeout: float = 120.0

    @property
    def root(self) -> HostRoot:
        return HostRoot(self.host_root)

    @property
    def conflist_path(self) -> str:
        return os.path.join(self.cni_conf_dir, CONFLIST_NAME)

    def kubeconfig_path(self, environ: Mapping[str, str]) -> str:
        """Where the kubeconfig goes ("" for none): `auto` means inside a pod only."""
        if self.kubeconfig_out == "none":
            return ""
        if self.kubeconfig_out == "auto":
            if not environ.get("KUBERNETES_SERVICE_HOST"):
                return ""
            return os.path.join(self.cni_conf_dir, *KUBECONFIG_SUBPATH)
        return self.kubeconfig_out


@dataclasses.dataclass(frozen=True)
class Primary:
    path: str
    doc: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class SyncResult:
    written: tuple[str, ...] = ()
    waiting_for: str = ""  # what is missing before the conflist can be written

    @property
    def done(self) -> bool:
        return not self.waiting_for


def run(
    options: InstallOptions,
    *,
    sources: Sequence[runtime.Source] | None = None,
    compile_byte_code: bool = True,
    environ: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """The whole command: install the runtime, then sync once (`once`) or until `stop`.
    `sources` (default: netplex and its dependencies) and the rest are test seams."""
    environ = os.environ if environ is None else environ
    stop = stop or _stop_on_signals()
    try:
        install_runtime(options, sources=sources, compile_byte_code=compile_byte_code)
        return _sync_loop(options, environ=environ, stop=stop)
    except InstallError as err:
        log.error("netplex install: %s", err)
    except OSError as exc:
        log.error("netplex install: %s: %s", exc.filename or "", exc.strerror or exc)
    return 1


def install_runtime(
    options: InstallOptions, *, sources: Sequence[runtime.Source] | None = None, compile_byte_code: bool = True
) -> runtime.Release:
    """Build the release (with its own interpreter, unless `--node-python` names the
    node's, which is checked first), point the launchers at it, and drop releases older
    than the one they pointed at before."""
    for directory in (options.cni_bin_dir, options.cni_conf_dir):
        if not os.path.isdir(directory):
            raise InstallError(f"{directory!r} does not exist (is the host path mounted?)")
    python = node.find_node_python(options.root, options.node_python) if options.node_python else None
    previous = runtime.installed_release(options.cni_bin_dir, options.root)
    release = runtime.build_release(
        options.lib_dir,
        runtime.default_sources() if sources is None else sources,
        runtime.console_scripts(),
        compile_byte_code=compile_byte_code,
        runtime=bundle.this_runtime() if python is None else None,
        root=options.root,
    )
    written = runtime.write_launchers(options.cni_bin_dir, release, root=options.root, python=python)
    if written:
        log.info("wrote launchers %s in %s (python %s)", ", ".join(written), options.cni_bin_dir,
                 python or "bundled")
    removed = runtime.remove_old_releases(options.lib_dir, keep={release.id, previous or release.id})
    if removed:
        log.info("removed old releases %s", ", ".join(removed))
    return release


def sync(options: InstallOptions, *, environ: Mapping[str, str]) -> SyncResult:
    """Bring the kubeconfig and the conflist up to date; write only what changed."""
    root = options.root
    if options.readiness_indicator_file and not os.path.exists(_indicator(options)):
        return SyncResult(waiting_for=f"readiness indicator file {options.readiness_indicator_file}")
    primary = find_primary(options.cni_conf_dir, options.primary_config)
    if primary is None:
        return SyncResult(waiting_for=f"a primary CNI config in {options.cni_conf_dir}")
    written = []
    kubeconfig = options.kubeconfig_path(environ)
    if kubeconfig:
        text = render_kubeconfig(options.service_account_dir, environ)
        if _write_if_changed(kubeconfig, text, mode=0o600):
            written.append(kubeconfig)
            log.info("wrote the plugin's kubeconfig %s", kubeconfig)
    extra = _extra_config(options.config_file)
    conflist = render_conflist(
        primary,
        cni_version=options.cni_version,
        entry=_entry_keys(options, kubeconfig=root.on_node(kubeconfig) if kubeconfig else "", extra=extra),
    )
    if _write_if_changed(options.conflist_path, conflist, mode=0o644):
        written.append(options.conflist_path)
        log.info("wrote %s with %s as the cluster network", options.conflist_path, os.path.basename(primary.path))
    _warn_if_shadowed(options.cni_conf_dir)
    return SyncResult(written=tuple(written))


def find_primary(conf_dir: str, name: str = "") -> Primary | None:
    """The primary CNI config: `name` in `conf_dir`, else the alphabetically first file
    that loads and is not a meta-plugin's (ours, Multus's). None when there is none."""
    paths = [os.path.join(conf_dir, name)] if name else netconfs.config_files(conf_dir)
    for path in paths:
        if os.path.basename(path) == CONFLIST_NAME or not os.path.isfile(path):
            continue
        try:
            network = netconfs.load_file(path)
            with open(path, "rb") as handle:
                doc = json.load(handle)
        except (CniError, OSError, ValueError) as err:
            log.warning("skipping %s as the primary CNI config: %s", path, err)
            continue
        types = {str(plugin.get("type")) for plugin in network.plugins}
        if types & META_PLUGIN_TYPES:
            log.warning("skipping %s as the primary CNI config: it is a meta-plugin's (%s)", path, ", ".join(types))
            continue
        return Primary(path=path, doc=doc)
    return None


def conflist_version(primary: Mapping[str, Any], requested: str = "") -> str:
    """The generated conflist's cniVersion: `requested`, else the primary's, else 1.0.0
    (a `cniVersions` list gives its highest version below 1.1.0, unless it has only 1.1.0)."""
    chosen = requested or str(primary.get("cniVersion") or "")
    if not chosen:
        listed = [v for v in primary.get("cniVersions") or [] if isinstance(v, str) and cni_version.is_supported(v)]
        below = [v for v in listed if not cni_version.at_least(v, "1.1.0")]
        chosen = max(below or listed or [DEFAULT_CNI_VERSION], key=cni_version.parse)
    if not cni_version.is_supported(chosen) or not cni_version.at_least(chosen, "0.3.0"):
        raise InstallError(
            f"cniVersion {chosen!r} cannot be used for {CONFLIST_NAME}: netplex speaks "
            f"{', '.join(cni_version.SUPPORTED_VERSIONS)} (a conflist needs 0.3.0 or later)"
        )
    return chosen


def capabilities_of(primary: Mapping[str, Any]) -> dict[str, bool]:
    """The capabilities the primary's plugins declare (true ones), plus pod annotations."""
    plugins = primary.get("plugins") if "plugins" in primary else [primary]
    found: dict[str, bool] = {}
    for plugin in plugins if isinstance(plugins, list) else []:
        declared = plugin.get("capabilities") if isinstance(plugin, dict) else None
        if isinstance(declared, dict):
            found.update({str(key): True for key, value in declared.items() if value is True})
    found[POD_ANNOTATIONS_CAPABILITY] = True
    return dict(sorted(found.items()))


def render_conflist(primary: Primary, *, cni_version: str = "", entry: Mapping[str, Any]) -> str:
    """`00-netplex.conflist`'s text; the netplex entry is checked as netplex will read it."""
    plugin: dict[str, Any] = {"type": "netplex", "capabilities": capabilities_of(primary.doc), **entry}
    if not plugin.get("clusterNetwork"):
        plugin["delegates"] = [primary.doc]
    version = conflist_version(primary.doc, cni_version)
    try:
        config.load_meta_conf({"cniVersion": version, "name": NETWORK_NAME, **plugin}, check_schema=True)
    except CniError as err:
        raise InstallError(f"the generated netplex config is invalid: {err.msg}") from err
    conflist = {"cniVersion": version, "name": NETWORK_NAME, "plugins": [plugin]}
    return json.dumps(conflist, indent=2) + "\n"


def render_kubeconfig(service_account_dir: str, environ: Mapping[str, str]) -> str:
    """A kubeconfig with the service account's token and CA, for the plugin on the node.
    The token is embedded: the pod's projected token file is not visible from the node."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise InstallError("KUBERNETES_SERVICE_HOST is not set: run inside a pod or pass --kubeconfig-out none")
    scheme = environ.get("KUBERNETES_SERVICE_PROTOCOL", "https")
    server = f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
    try:
        with open(os.path.join(service_account_dir, "token"), encoding="utf-8") as handle:
            token = handle.read().strip()
        with open(os.path.join(service_account_dir, "ca.crt"), "rb") as handle:
            ca = base64.b64encode(handle.read()).decode()
    except OSError as exc:
        raise InstallError(f"cannot read the service account in {service_account_dir!r}: {exc.strerror}") from exc
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "netplex", "user": {"token": token}}],
        "contexts": [{"name": "netplex", "context": {"cluster": "local", "user": "netplex"}}],
        "current-context": "netplex",
    }
    # JSON (which is YAML too, for kubectl and client-go): thin mode's client reads JSON
    # with the standard library, and importing `yaml` would cost every exec'd call ~15 ms.
    return json.dumps(doc, indent=2) + "\n"


def fingerprint(options: InstallOptions, *, environ: Mapping[str, str]) -> tuple[Any, ...]:
    """Metadata of every input and output; a sync is due when it changes. (A mounted
    ConfigMap or token is a symlink swapped on update: stat follows it.)"""
    account = options.service_account_dir
    paths = [options.config_file, os.path.join(account, "token"), os.path.join(account, "ca.crt"),
             options.kubeconfig_path(environ)]
    if options.readiness_indicator_file:
        paths.append(_indicator(options))
    paths.extend(netconfs.config_files(options.cni_conf_dir))
    return tuple((path, _stat(path)) for path in paths if path)


def _sync_loop(options: InstallOptions, *, environ: Mapping[str, str], stop: threading.Event) -> int:
    deadline = time.monotonic() + options.timeout
    last: tuple[Any, ...] | None = None
    waiting = ""
    while not stop.is_set():
        current = fingerprint(options, environ=environ)
        if current != last:
            try:
                result = sync(options, environ=environ)
            except (InstallError, OSError) as err:
                if options.once:
                    raise
                log.error("netplex install: %s (keeping the current config; retrying on the next change)", err)
                result = SyncResult()
            if result.waiting_for and result.waiting_for != waiting:
                log.info("waiting for %s", result.waiting_for)
            waiting = result.waiting_for
            last = current if result.done else None
            if options.once and result.done:
                return 0
        if options.once and time.monotonic() >= deadline:
            raise InstallError(f"gave up after {options.timeout:g}s waiting for {waiting}")
        stop.wait(options.interval)
    log.info("netplex install: stopping; %s stays in place", options.conflist_path)
    return 0


def _entry_keys(options: InstallOptions, *, kubeconfig: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    keys: dict[str, Any] = {"binDir": options.root.on_node(options.cni_bin_dir)}
    if kubeconfig:
        keys["kubeconfig"] = kubeconfig
    if options.readiness_indicator_file:
        keys["readinessindicatorfile"] = options.readiness_indicator_file
    if options.daemon_socket:
        keys["daemonSocket"] = options.daemon_socket
    return {**keys, **extra}


def _indicator(options: InstallOptions) -> str:
    """The readiness indicator file as the installer sees it, with the node's symlinks
    (`/var/run` -> `/run`) followed inside the host root, not into the installer's own /."""
    node_path = options.readiness_indicator_file
    return hostpath.inside(options.root.path, node_path) or options.root.inside(node_path)


def _extra_config(path: str) -> dict[str, Any]:
    """The `--config` file's keys (the ConfigMap): MetaConf keys for the netplex entry."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, ValueError) as exc:
        raise InstallError(f"--config {path!r}: {getattr(exc, 'strerror', None) or exc}") from exc
    if not isinstance(doc, dict):
        raise InstallError(f"--config {path!r}: not a JSON object")
    reserved = sorted(set(doc) & RESERVED_KEYS)
    if reserved:
        raise InstallError(f"--config {path!r}: {', '.join(reserved)} are set by netplex install, not by the config")
    return doc


def _warn_if_shadowed(conf_dir: str) -> None:
    first = netconfs.config_files(conf_dir)[:1]
    if first and os.path.basename(first[0]) != CONFLIST_NAME:
        log.warning(
            "%s sorts before %s: the runtime uses it, not netplex (remove it, e.g. an old 00-multus.conf)",
            first[0], CONFLIST_NAME,
        )


def _write_if_changed(path: str, text: str, *, mode: int) -> bool:
    data = text.encode()
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return False
    except FileNotFoundError:
        pass
    store.atomic_write(path, data, mode=mode)
    return True


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def _stop_on_signals(install: Callable[..., Any] = signal.signal) -> threading.Event:
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        install(number, lambda *_: stop.set())
    return stop
