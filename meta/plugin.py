"""netplex, the meta-plugin: the CNI verbs a runtime calls with `"type": "netplex"`.

ADD reads the config, the pod and its selection, resolves every network to a delegate
conflist, records the intent in the cache, runs the delegates in order (rolling back on
failure), applies NPWG default-route selection, writes network-status with one patch and
returns the merged result. DEL, CHECK and GC work from the cache alone."""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from cni import faultpoint, invoke, skel
from cni.args import format_cni_args
from cni.config import Conflist
from cni.errors import CniError, Code, MultiError
from cni.invoke import Builtins
from cni.result import Result
from delegates.netlink import scope
from meta import attach, cache, config, defaultroute, pathrules, resolve, status, sweep
from meta.model import Attachment
from meta.source import Forbidden, NetworkAttachment, NotFound, Pod, Source, SourceError, Unavailable

if TYPE_CHECKING:
    from meta.events import EventRecorder

log = logging.getLogger(__name__)

READINESS_WAIT = 45.0  # seconds, as Multus waits for its readiness indicator
VALID_ATTACHMENTS = "cni.dev/valid-attachments"
DEFAULT_NAMESPACE = "default"


class PodIdentity(msgspec.Struct, frozen=True):
    """Who the sandbox belongs to, from CNI_ARGS (containerd passes all four keys,
    podman only K8S_POD_NAME: the namespace then defaults to `default`)."""

    namespace: str
    name: str
    uid: str
    infra_container_id: str

    @classmethod
    def from_args(cls, args: skel.CmdArgs) -> PodIdentity:
        pairs = args.cni_args
        return cls(
            namespace=pairs.get("K8S_POD_NAMESPACE") or DEFAULT_NAMESPACE,
            name=pairs.get("K8S_POD_NAME", ""),
            uid=pairs.get("K8S_POD_UID", ""),
            infra_container_id=pairs.get("K8S_POD_INFRA_CONTAINER_ID") or args.container_id,
        )

    def delegate_cni_args(self) -> str:
        """CNI_ARGS for a secondary network's delegates, as Multus passes them."""
        return format_cni_args({
            "IgnoreUnknown": "true",
            "K8S_POD_NAMESPACE": self.namespace,
            "K8S_POD_NAME": self.name,
            "K8S_POD_INFRA_CONTAINER_ID": self.infra_container_id,
            "K8S_POD_UID": self.uid,
        })


def cmd_add(args: skel.CmdArgs) -> Result:
    conf = config.load_meta_conf(args.stdin)
    return add(conf, args, source_factory=lambda: open_source(conf))


def cmd_del(args: skel.CmdArgs) -> None:
    delete(config.load_meta_conf(args.stdin), args)


def cmd_check(args: skel.CmdArgs) -> None:
    check(config.load_meta_conf(args.stdin), args)


def cmd_status(args: skel.CmdArgs) -> None:
    conf = config.load_meta_conf(args.stdin)
    if not config.is_ready(conf):
        raise CniError(
            Code.NOT_AVAILABLE,
            f"not ready: readinessindicatorfile {conf.readiness_indicator_file!r} does not exist",
        )
    from meta import statusfwd  # the cluster network's own STATUS answer, as Multus forwards it

    statusfwd.forward(conf, args, builtins=_builtins(conf), source_factory=lambda: open_source(conf))


def cmd_gc(args: skel.CmdArgs) -> None:
    gc(config.load_meta_conf(args.stdin), args)


PLUGIN = skel.Plugin(
    add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc, about="netplex"
)


def add(
    conf: config.MetaConf,
    args: skel.CmdArgs,
    *,
    source_factory: Callable[[], Source],
    events: EventRecorder | None = None,
) -> Result:
    """The ADD flow for a parsed config; the daemon calls it with its watch-cache source
    and its event recorder. Thin mode (no recorder given) posts through the source it
    opened and waits at most events.THIN_FLUSH_SECONDS for the events before returning."""
    source = _LazySource(source_factory)
    recorder = events
    if recorder is None and conf.uses_kubernetes and args.cni_args.get("K8S_POD_NAME"):
        from meta import events as pod_events

        recorder = pod_events.EventRecorder(lambda: _event_sink(source))
    try:
        # The ambient deadline bounds every step: delegates, the IPAM they exec, API calls.
        with invoke.deadline_scope(time.monotonic() + conf.add_timeout):
            return _add(conf, args, source=source, events=recorder)
    except CniError as err:
        if recorder is not None:
            from meta import events as pod_events

            identity = PodIdentity.from_args(args)
            recorder.record(identity.namespace, identity.name, identity.uid, reason=pod_events.FAILED_ADD,
                            message=f"netplex ADD failed: {err.msg}", warning=True)
        raise
    finally:
        if recorder is not None and events is None:
            from meta import events as pod_events

            recorder.flush(pod_events.THIN_FLUSH_SECONDS)


def _add(conf: config.MetaConf, args: skel.CmdArgs, *, source: Source, events: EventRecorder | None) -> Result:
    """The ADD flow proper. The source is opened only when needed (containerd's
    annotations spare the pod read, but NADs and network-status still need it)."""
    started = time.monotonic()
    config.wait_for_readiness(conf, min(READINESS_WAIT, conf.add_timeout))
    identity = PodIdentity.from_args(args)
    pod = _pod(conf, identity, source)
    plan = _resolve(conf, pod, source, args)
    if cache.other_ifnames(conf.cni_dir, args.container_id, args.ifname):
        # A second netplex network on one sandbox (podman's `network connect`): the pod's
        # selection and defaultNetworks were attached by the first; this one is its own.
        plan = [attachment for attachment in plan if attachment.is_cluster_network]
    _refuse_taken_ifnames(plan, args.netns)
    plan = _with_devices(conf, pod, plan, args, deadline=started + conf.add_timeout)
    pathrules.check_plan(conf.ipam_roots, plan)  # ipam.dataDir under ipamRoots, when set
    entry = cache.CacheEntry(
        container_id=args.container_id, ifname=args.ifname, netns=args.netns,
        pod_namespace=pod.namespace, pod_name=pod.name, pod_uid=pod.uid, cni_version=conf.version,
        attachments=[_cached(attachment, identity, args) for attachment in plan],
        interface_group=scope.new_group(),  # one per invocation, never per network (i12)
    )
    cache.write(conf.cni_dir, entry)  # the intent, before any delegate runs
    faultpoint.reached("plugin.after-cache-write")
    delegate_call = args.replace(path=_cni_path(conf, args))
    try:
        results = attach.add_all(
            entry, delegate_call, cni_dir=conf.cni_dir, builtins=_builtins(conf),
            deadline=started + conf.add_timeout, delegate_timeout=conf.delegate_timeout,
        )
    except Exception:  # rolled back: the device-info files go too
        _forget_devices(conf, entry.attachments, args.container_id)
        raise
    try:
        routed = defaultroute.apply(plan, results, netns=args.netns)
        if routed != results:  # CHECK must compare the kernel with the routes as netplex left them
            _record_results(entry, routed, cni_dir=conf.cni_dir)
            results = routed
        if pod.name:
            infos = _device_infos(conf, plan, args)
            _publish(source, pod, status.network_status(list(zip(plan, results, strict=True)), device_info=infos))
        if events is not None:
            _record_added(events, pod, plan, results)
        return status.merged_result(
            list(zip(plan, results, strict=True)), mode=conf.result_ips, cni_version=conf.version
        )
    except Exception as exc:  # not only CniError: a failed ADD leaves nothing attached
        _undo(entry, delegate_call, conf)
        _forget_devices(conf, entry.attachments, args.container_id)
        if isinstance(exc, CniError):
            raise exc.prefixed(f"{entry.pod}") from exc
        raise


def delete(conf: config.MetaConf, args: skel.CmdArgs) -> None:
    """DEL from the cache alone: no API access, works after the NAD is gone."""
    entry = cache.read(conf.cni_dir, args.container_id, args.ifname)
    netns = args.netns if args.netns and os.path.exists(args.netns) else ""
    if entry is None:
        from meta import multusmigrate  # a sandbox Multus attached before the switch

        adopted = args.replace(netns=netns, path=_cni_path(conf, args))
        if not multusmigrate.delete(
            conf, adopted, builtins=_builtins(conf), timeout=conf.delegate_timeout,
            cni_args=PodIdentity.from_args(args).delegate_cni_args(),
        ):
            log.info("DEL %s/%s: nothing recorded, nothing to do", args.container_id, args.ifname)
        return
    attachments = list(entry.attachments)
    attach.delete_all(
        entry, args.replace(netns=netns, path=_cni_path(conf, args)),
        cni_dir=conf.cni_dir, builtins=_builtins(conf), timeout=conf.delegate_timeout,
    )
    _forget_devices(conf, attachments, args.container_id)


def check(conf: config.MetaConf, args: skel.CmdArgs) -> None:
    entry = cache.read(conf.cni_dir, args.container_id, args.ifname)
    if entry is None:
        from meta import multusmigrate

        if multusmigrate.check(
            conf, args.replace(path=_cni_path(conf, args)), builtins=_builtins(conf),
            timeout=conf.delegate_timeout, cni_args=PodIdentity.from_args(args).delegate_cni_args(),
        ):
            return
        raise CniError(Code.UNKNOWN_CONTAINER, f"no attachments recorded for container {args.container_id!r}")
    attach.check_all(
        entry, args.replace(path=_cni_path(conf, args)), builtins=_builtins(conf), timeout=conf.delegate_timeout
    )


def gc(conf: config.MetaConf, args: skel.CmdArgs) -> None:
    """CNI 1.1 GC: DEL every recorded sandbox the runtime no longer lists, then let each
    network's delegates free what they hold for attachments that are not valid."""
    valid = _valid_attachments(conf)
    builtins = _builtins(conf)
    call = args.replace(path=_cni_path(conf, args))
    errors: list[CniError] = []
    kept: list[cache.CacheEntry] = []
    stale_entries: list[cache.CacheEntry] = []
    for entry in cache.list_entries(conf.cni_dir):
        if (entry.container_id, entry.ifname) in valid:
            kept.append(entry)
            continue
        stale_entries.append(copy.deepcopy(entry))
        stale = call.replace(
            command="DEL", container_id=entry.container_id, ifname=entry.ifname,
            netns=entry.netns if entry.netns and os.path.exists(entry.netns) else "",
        )
        try:
            attachments = list(entry.attachments)
            attach.delete_all(entry, stale, cni_dir=conf.cni_dir, builtins=builtins, timeout=conf.delegate_timeout)
            _forget_devices(conf, attachments, entry.container_id)
        except CniError as err:
            errors.append(err)
    from meta import multusmigrate  # sandboxes Multus attached before the switch

    multus_kept, multus_errors = multusmigrate.gc(
        conf, call, valid=valid, builtins=builtins, timeout=conf.delegate_timeout
    )
    kept.extend(multus_kept)
    errors.extend(multus_errors)
    errors.extend(
        attach.gc_delegates(kept, call, builtins=builtins, timeout=conf.delegate_timeout, stale=stale_entries)
    )
    sweep.sweep_cni_dir(conf.cni_dir, ipam_roots=conf.ipam_roots, live_networks=cache.network_names(conf.cni_dir))
    if errors:
        raise errors[0] if len(errors) == 1 else MultiError(errors)


def open_source(conf: config.MetaConf) -> Source:
    """The Kubernetes API when a kubeconfig is set, else the local manifest directory.
    `meta.k8s` (and with it `kubernetes`, ~200 ms) is imported only in the first case."""
    if conf.uses_kubernetes:
        from meta import kubelight

        try:
            # The three verbs over http.client (i12): `kubernetes` costs ~350 ms of imports.
            light = kubelight.from_kubeconfig(conf.kubeconfig, timeout=min(conf.delegate_timeout, 10.0))
            if light is not None:
                return light
            from meta import k8s

            return k8s.Kube.from_kubeconfig(conf.kubeconfig, timeout=min(conf.delegate_timeout, 10.0))
        except SourceError as err:
            raise _source_error(err) from err
    from meta.local import LocalSource

    return LocalSource(conf.local_networks)


class _LazySource:
    """Opens the real source on first use: an ADD that needs no read or write of the
    API (no pod name, annotations from the runtime, only file-based networks) never
    imports `kubernetes`."""

    def __init__(self, factory: Callable[[], Source]) -> None:
        self._factory = factory
        self._source: Source | None = None

    def _get(self) -> Source:
        if self._source is None:
            self._source = self._factory()
        return self._source

    def opened(self) -> Source:
        return self._get()

    def get_pod(self, namespace: str, name: str) -> Pod:
        return self._get().get_pod(namespace, name)

    def get_attachment(self, namespace: str, name: str) -> NetworkAttachment:
        return self._get().get_attachment(namespace, name)

    def set_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        self._get().set_network_status(pod, status)


def _pod(conf: config.MetaConf, identity: PodIdentity, source: Source) -> Pod:
    if not identity.name:  # not a Kubernetes pod: the cluster network and defaultNetworks only
        return Pod(namespace=identity.namespace, name="")
    annotations = resolve.pod_annotations_from_runtime(conf.runtime_config)
    if annotations is not None:  # containerd handed us the annotations: no API read
        return Pod(namespace=identity.namespace, name=identity.name, uid=identity.uid, annotations=annotations)
    try:
        pod = source.get_pod(identity.namespace, identity.name)
    except NotFound as err:  # never a made-up result for a pod the API does not know
        raise CniError(Code.UNKNOWN_CONTAINER, str(err)) from err
    except SourceError as err:
        raise _source_error(err) from err
    if identity.uid and pod.uid and identity.uid != pod.uid:
        raise CniError(
            Code.UNKNOWN_CONTAINER,
            f"pod {identity.namespace}/{identity.name}: UID {pod.uid} differs from the runtime's {identity.uid}"
            " (the pod was recreated)",
        )
    return pod


def _resolve(conf: config.MetaConf, pod: Pod, source: Source, args: skel.CmdArgs) -> list[Attachment]:
    try:
        return resolve.resolve(conf, pod, source, runtime_config=conf.runtime_config, ifname=args.ifname)
    except SourceError as err:
        raise _source_error(err) from err


def _cached(attachment: Attachment, identity: PodIdentity, args: skel.CmdArgs) -> cache.CachedAttachment:
    gateways = attachment.default_route or ()
    return cache.CachedAttachment(
        network=attachment.network,
        ifname=attachment.ifname,
        conflist=attachment.conflist.to_doc(),
        capability_args=dict(attachment.capability_args),
        # The cluster network gets the runtime's own CNI_ARGS (podman's IP=/MAC= are for it).
        cni_args=args.args if attachment.is_cluster_network else identity.delegate_cni_args(),
        is_cluster_network=attachment.is_cluster_network,
        prefer_binaries=attachment.is_cluster_network and attachment.origin != "nad",
        default_route=[str(gateway) for gateway in gateways],
    )


def _record_results(entry: cache.CacheEntry, results: list[Result], *, cni_dir: str) -> None:
    for attachment, result in zip(entry.attachments, results, strict=True):
        attachment.result = result.to_wire(Conflist.from_doc(attachment.conflist, where="conflist").version)
    cache.write(cni_dir, entry)


def _refuse_taken_ifnames(plan: list[Attachment], netns: str) -> None:
    """Fail before anything runs when an ifname netplex would create already exists in
    the sandbox: a delegate would fail on it, and the rollback's DEL would then delete an
    interface that is not netplex's to delete."""
    from delegates.common import netlink_errors
    from delegates.netlink import errors, links

    try:
        with netlink_errors("CNI_NETNS"):
            taken = {link.name for link in links.list_links(netns)}
    except CniError as err:
        if isinstance(err.__cause__, errors.NetnsNotFound):
            return  # nothing there to clobber; the delegates report the missing namespace
        raise
    for attachment in plan:
        if attachment.ifname in taken:
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"interface {attachment.ifname!r} of network {attachment.network!r} already exists in "
                f"CNI_NETNS {netns!r} (another network attached it; name the interface in the selection)",
            )


def _publish(source: Source, pod: Pod, network_status: list[dict[str, Any]]) -> None:
    try:
        source.set_network_status(pod, network_status)
    except SourceError as err:
        raise _source_error(err).prefixed("cannot write network-status") from err


def _undo(entry: cache.CacheEntry, args: skel.CmdArgs, conf: config.MetaConf) -> None:
    try:
        attach.delete_all(
            entry, args.replace(command="DEL"), cni_dir=conf.cni_dir,
            builtins=_builtins(conf), timeout=conf.delegate_timeout,
        )
    except CniError as err:
        log.error("rollback of %s left attachments behind: %s", entry.pod, err.msg)


def _with_devices(
    conf: config.MetaConf, pod: Pod, plan: list[Attachment], args: skel.CmdArgs, *, deadline: float
) -> list[Attachment]:
    """Device-plugin networks (resourceName, deviceID): meta.devices, loaded only for them."""
    if not any(attachment.resource_name or attachment.device_id for attachment in plan):
        return plan
    from meta.devices import assign

    return assign.assign(plan, pod=pod, conf=conf, container_id=args.container_id, deadline=deadline)


def _device_infos(conf: config.MetaConf, plan: list[Attachment], args: skel.CmdArgs) -> dict[str, dict[str, Any]]:
    if not any(attachment.device_id for attachment in plan):
        return {}
    from meta.devices import assign

    return assign.device_infos(plan, conf=conf, container_id=args.container_id)


def _forget_devices(conf: config.MetaConf, attachments: list[cache.CachedAttachment], container_id: str) -> None:
    from meta.devices import assign

    assign.forget(attachments, conf=conf, container_id=container_id)


def _record_added(events: EventRecorder, pod: Pod, plan: list[Attachment], results: list[Result]) -> None:
    """One `AddedInterface` per attachment, worded as Multus words it."""
    from meta.events import ADDED_INTERFACE, added_interface_message

    for attachment, result in zip(plan, results, strict=True):
        ips = [str(ip.address) for ip in result.ips]
        events.record(pod.namespace, pod.name, pod.uid, reason=ADDED_INTERFACE,
                      message=added_interface_message(attachment.ifname, ips, attachment.network))


def _event_sink(source: _LazySource) -> Callable[[str, dict[str, Any]], None] | None:
    """The opened source's event POST (meta.k8s.Kube.create_event), if it has one."""
    sink = getattr(source.opened(), "create_event", None)
    return sink if callable(sink) else None


def builtins_for_status(conf: config.MetaConf) -> Builtins | None:
    """The built-ins STATUS may use (the daemon's STATUS is thin mode's)."""
    return _builtins(conf)


def _builtins(conf: config.MetaConf) -> Builtins | None:
    if not conf.builtin_delegates:
        return None
    from delegates import registry

    return registry.lookup


def _cni_path(conf: config.MetaConf, args: skel.CmdArgs) -> tuple[str, ...]:
    """Delegates are found in binDir first, then the runtime's CNI_PATH (as Multus)."""
    return (conf.bin_dir, *(p for p in args.path if p != conf.bin_dir))


def _valid_attachments(conf: config.MetaConf) -> set[tuple[str, str]]:
    raw = conf.given_valid_attachments([])
    if not isinstance(raw, list):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{VALID_ATTACHMENTS}: must be a list")
    valid = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str):
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"{VALID_ATTACHMENTS}.{index}: want containerID and ifname")
        valid.add((item["containerID"], str(item.get("ifname", ""))))
    return valid


def _source_error(err: SourceError) -> CniError:
    if isinstance(err, Unavailable):
        return CniError(Code.TRY_AGAIN_LATER, str(err))
    if isinstance(err, NotFound):
        return CniError(Code.INVALID_NETWORK_CONFIG, str(err))
    if isinstance(err, Forbidden):
        return CniError(Code.INVALID_ENVIRONMENT, f"{err} (check netplex's RBAC)")
    return CniError(Code.INTERNAL, str(err))
