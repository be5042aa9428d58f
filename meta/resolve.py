"""Resolving a pod's networks into an ordered attachment plan (no delegate runs here):

1. the cluster network: the pod's `v1.multus-cni.io/default-network` override, else
   `clusterNetwork` (a NetworkAttachmentDefinition in netplexNamespace, else a config in
   confDir by name, or a file/directory path), else `delegates[0]`; it keeps CNI_IFNAME
   and gets kubelet's runtimeConfig (NPWG: only the cluster network does);
2. `defaultNetworks` (not for pods in systemNamespaces), or `delegates[1:]`;
3. the selection annotation's networks, in order, after namespace isolation, each read
   from its NetworkAttachmentDefinition (spec.config, else a conflist then a conf in
   confDir named like it: NPWG 3.4.1), with its ips/mac/portMappings/bandwidth checked
   against the capabilities its plugins declare and cni-args put in `args.cni`;
4. ifnames: `net<position>` unless the element names one; a clash is error 7;
5. the default-route claims, checked (meta.status.default_route_owner).

Each NetworkAttachmentDefinition is read once per call even when selected twice. A
missing one is error 7 naming it; an unreachable source is error 11.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec

from cni.config import Conflist
from cni.errors import CniError, Code
from meta import auxchain, model, netconfs, selection, status
from meta.config import MetaConf
from meta.model import (
    CRI_POD_ANNOTATIONS,
    DEFAULT_NETWORK_ANNOTATION,
    NETWORKS_ANNOTATION,
    RESOURCE_NAME_ANNOTATION,
    Attachment,
    NetworkSelection,
)
from meta.source import Forbidden, NetworkAttachment, NotFound, Pod, Source, Unavailable

log = logging.getLogger(__name__)

MAX_SPEC_CONFIG_BYTES = 1024 * 1024
# Capabilities whose request must reach a plugin that declares it (NPWG v1.3 4.1.2.1).
CHECKED_CAPABILITIES = ("ips", "mac", "portMappings", "bandwidth")
# runtimeConfig values whose inner keys containerd writes as Go field names (HostPort...).
_NESTED_CAPABILITIES = ("portMappings", "bandwidth", "dns", "ipRanges")


def resolve(
    conf: MetaConf,
    pod: Pod,
    source: Source,
    *,
    runtime_config: Mapping[str, Any],
    ifname: str,
    pod_annotations_override: Mapping[str, str] | None = None,
) -> list[Attachment]:
    """The pod's attachments in the order they are added (the cluster network first)."""
    annotations = pod.annotations if pod_annotations_override is None else pod_annotations_override
    pod = msgspec.structs.replace(pod, namespace=pod.namespace or "default", annotations=annotations)
    chosen = selection.parse_selection(annotations.get(NETWORKS_ANNOTATION, ""), pod_namespace=pod.namespace)
    reader = _Reader(conf, source)
    kubelet_args = normalize_runtime_config(runtime_config)
    pending = [_cluster_network(conf, pod, reader, kubelet_args=kubelet_args, ifname=ifname)]
    pending[0] = auxchain.with_auxiliary_chain(conf, pending[0])  # Multus's auxiliaryCNIChainName
    pending.extend(_default_networks(conf, pod, reader))
    pending.extend(_selected(conf, pod, element, reader) for element in chosen)
    plan = _assign_ifnames(pending, ifname)
    status.default_route_owner(plan)
    return plan


def normalize_runtime_config(runtime_config: Mapping[str, Any]) -> dict[str, Any]:
    """kubelet's runtimeConfig with the spec's lowerCamel keys: containerd writes the
    values of portMappings, bandwidth, dns and ipRanges with Go's field names
    (`HostPort`, `IngressRate`, `Servers`, `RangeStart`); podman writes `hostPort`. Other
    keys (and the pod-annotations map) pass through untouched."""
    normalized: dict[str, Any] = {}
    for key, value in runtime_config.items():
        canonical = next((name for name in _NESTED_CAPABILITIES if name.lower() == key.lower()), key)
        normalized[canonical] = _lower_keys(value) if canonical in _NESTED_CAPABILITIES else value
    return normalized


def pod_annotations_from_runtime(runtime_config: Mapping[str, Any]) -> dict[str, str] | None:
    """The pod's annotations as containerd passes them in runtimeConfig (capability
    `io.kubernetes.cri.pod-annotations`), so no pod read is needed; None when absent or
    not a map of strings."""
    value = runtime_config.get(CRI_POD_ANNOTATIONS)
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        log.warning("runtimeConfig %r is not a map of strings; reading the pod instead", CRI_POD_ANNOTATIONS)
        return None
    return dict(value)


class _Reader:
    """NetworkAttachmentDefinition reads for one ADD: each object fetched once."""

    def __init__(self, conf: MetaConf, source: Source) -> None:
        self._conf = conf
        self._source = source
        self._seen: dict[tuple[str, str], NetworkAttachment | None] = {}

    def find(self, namespace: str, name: str) -> NetworkAttachment | None:
        """The object, or None when it does not exist; errors 11/7 when unreadable."""
        key = (namespace, name)
        if key not in self._seen:
            what = f"NetworkAttachmentDefinition {namespace}/{name}"
            try:
                self._seen[key] = self._source.get_attachment(namespace, name)
            except NotFound:
                self._seen[key] = None
            except Unavailable as exc:
                raise CniError(Code.TRY_AGAIN_LATER, f"cannot read {what}: {exc}") from exc
            except Forbidden as exc:
                raise CniError(
                    Code.INVALID_NETWORK_CONFIG, f"netplex may not read {what} (check its RBAC): {exc}"
                ) from exc
        return self._seen[key]

    def get(self, namespace: str, name: str) -> NetworkAttachment:
        found = self.find(namespace, name)
        if found is None:
            raise CniError(Code.INVALID_NETWORK_CONFIG, f"NetworkAttachmentDefinition {namespace}/{name} not found")
        return found

    def network(self, nad: NetworkAttachment) -> Conflist:
        """The NAD's CNI config (NPWG 3.4.1): spec.config, else confDir by the NAD's name."""
        what = f"NetworkAttachmentDefinition {nad.namespace}/{nad.name}"
        version = self._conf.cni_version
        if nad.config.strip():
            if len(nad.config) > MAX_SPEC_CONFIG_BYTES:
                raise CniError(Code.INVALID_NETWORK_CONFIG, f"{what}: spec.config is larger than 1 MiB")
            return netconfs.parse_config(
                nad.config, where=f"{what}: spec.config", default_name=nad.name, cni_version=version
            )
        found = netconfs.find_by_name(self._conf.conf_dir, nad.name, cni_version=version)
        if found is None:
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"{what} has no spec.config and confDir {self._conf.conf_dir!r} holds no "
                f"conflist or conf named {nad.name!r}",
            )
        return found


def _cluster_network(
    conf: MetaConf, pod: Pod, reader: _Reader, *, kubelet_args: dict[str, Any], ifname: str
) -> Attachment:
    override = pod.annotations.get(DEFAULT_NETWORK_ANNOTATION, "").strip()
    if override:
        element = selection.parse_default_network(override, namespace=conf.netplex_namespace)
        _check_isolation(conf, pod, element, also=(conf.netplex_namespace,))
        if element.interface and element.interface != ifname:
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"{DEFAULT_NETWORK_ANNOTATION}: the cluster network keeps CNI_IFNAME {ifname!r}, "
                f"not {element.interface!r}",
            )
        from_file = None if reader.find(element.namespace, element.name) else auxchain.default_network_file(
            conf, element)  # no such NAD: a config in confDir, as Multus falls back to
        attachment = from_file or _from_selection(element, reader)
        args = {**kubelet_args, **attachment.capability_args}
        return msgspec.structs.replace(attachment, is_cluster_network=True, capability_args=args, ifname=ifname)
    if conf.cluster_network:
        found = _by_reference(conf, conf.cluster_network, reader, what="clusterNetwork")
        return msgspec.structs.replace(found, is_cluster_network=True, capability_args=kubelet_args, ifname=ifname)
    delegates = conf.delegate_networks()
    if not delegates:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "clusterNetwork: set clusterNetwork or delegates")
    first = delegates[0]
    return Attachment(
        network=first.name,
        ifname=ifname,
        conflist=first,
        is_cluster_network=True,
        capability_args=kubelet_args,
        origin="delegates[0]",
    )


def _default_networks(conf: MetaConf, pod: Pod, reader: _Reader) -> list[Attachment]:
    if not conf.cluster_network:  # delegates mode: every delegate after the first, always
        return [
            Attachment(network=network.name, ifname="", conflist=network, origin=f"delegates[{index}]")
            for index, network in enumerate(conf.delegate_networks()[1:], start=1)
        ]
    if pod.namespace in conf.system_namespaces:
        return []
    return [
        _by_reference(conf, name, reader, what=f"defaultNetworks.{index}")
        for index, name in enumerate(conf.default_networks)
    ]


def _by_reference(conf: MetaConf, reference: str, reader: _Reader, *, what: str) -> Attachment:
    """A clusterNetwork/defaultNetworks entry, as Multus reads it: a path when it holds a
    '/', else a NetworkAttachmentDefinition in netplexNamespace, else a config in confDir
    by name (or by file name without extension)."""
    version = conf.cni_version
    if "/" in reference:
        try:
            network = netconfs.load_path(reference, cni_version=version)
        except CniError as err:
            raise err.prefixed(what) from err
        return Attachment(network=network.name, ifname="", conflist=network, origin=f"file:{reference}")
    if not model.is_object_name(reference):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{what}: {reference!r} is neither a path nor a network name")
    nad = reader.find(conf.netplex_namespace, reference)
    if nad is not None:
        network = reader.network(nad)
        return Attachment(
            network=f"{nad.namespace}/{nad.name}",
            ifname="",
            conflist=network,
            resource_name=nad.annotations.get(RESOURCE_NAME_ANNOTATION, ""),
            origin="nad",
        )
    found = netconfs.find_by_name(conf.conf_dir, reference, cni_version=version, match_file_name=True)
    if found is None:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            f"{what}: no NetworkAttachmentDefinition {conf.netplex_namespace}/{reference} and no CNI config "
            f"named {reference!r} in confDir {conf.conf_dir!r}",
        )
    return Attachment(network=found.name, ifname="", conflist=found, origin=f"file:{conf.conf_dir}")


def _selected(conf: MetaConf, pod: Pod, element: NetworkSelection, reader: _Reader) -> Attachment:
    _check_isolation(conf, pod, element)
    return _from_selection(element, reader)


def _from_selection(element: NetworkSelection, reader: _Reader) -> Attachment:
    nad = reader.get(element.namespace, element.name)
    network = reader.network(nad)
    requested = element.capability_args()
    _check_capabilities(element.key, network, requested)
    if element.cni_args:
        network = _with_cni_args(network, element.cni_args)
    network = netconfs.inject_device_id(network, element.device_id)  # top-level too, as Multus
    if element.ipam_claim_reference:  # NPWG v1.3 4.1.2.1.11: the IPAM (netplex-ipam) reads it from args.cni
        network = _with_cni_args(network, {"ipam-claim-reference": element.ipam_claim_reference})
    return Attachment(
        network=element.key,
        ifname=element.interface,
        conflist=network,
        selection=element,
        capability_args=requested,
        resource_name=nad.annotations.get(RESOURCE_NAME_ANNOTATION, ""),
        device_id=element.device_id,
        origin="nad",
    )


def _check_isolation(conf: MetaConf, pod: Pod, element: NetworkSelection, *, also: tuple[str, ...] = ()) -> None:
    if not conf.namespace_isolation or element.namespace == pod.namespace:
        return
    if element.namespace in conf.global_namespaces or element.namespace in also:
        return
    allowed = ", ".join(sorted({pod.namespace, *conf.global_namespaces, *also}))
    raise CniError(
        Code.INVALID_NETWORK_CONFIG,
        f"namespace isolation: pod {pod.namespace}/{pod.name} may not use network {element.key!r} "
        f"(allowed namespaces: {allowed})",
    )


def _check_capabilities(network_key: str, network: Conflist, requested: Mapping[str, Any]) -> None:
    for capability in CHECKED_CAPABILITIES:
        if capability not in requested:
            continue
        declared = any(
            isinstance(plugin.get("capabilities"), dict) and plugin["capabilities"].get(capability) is True
            for plugin in network.plugins
        )
        if not declared:
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"network {network_key!r} cannot honour the requested {capability!r}: "
                f"none of its plugins declares the {capability!r} capability",
            )


def _with_cni_args(network: Conflist, cni_args: Mapping[str, Any]) -> Conflist:
    """Every plugin of `network` with `cni_args` merged into its `args.cni` (NPWG
    cni-args; the element's keys win over the config's)."""
    plugins = []
    for plugin in network.plugins:
        merged = dict(plugin)
        raw_args = merged.get("args")
        args: dict[str, Any] = dict(raw_args) if isinstance(raw_args, dict) else {}
        existing = args.get("cni")
        args["cni"] = {**(existing if isinstance(existing, dict) else {}), **cni_args}
        merged["args"] = args
        plugins.append(merged)
    return network.replace(plugins=plugins)


def _assign_ifnames(pending: list[Attachment], ifname: str) -> list[Attachment]:
    """The cluster network keeps CNI_IFNAME; attachment i (from 1) gets its requested
    name or `net<i>` (Multus numbers by position in the whole list). Clashes fail."""
    taken: dict[str, Attachment] = {}
    plan = []
    for index, attachment in enumerate(pending):
        name = ifname if index == 0 else attachment.ifname or f"net{index}"
        earlier = taken.get(name)
        if earlier is not None:
            raise CniError(
                Code.INVALID_NETWORK_CONFIG,
                f"interface name {name!r} of network {attachment.network!r} clashes with "
                f"network {earlier.network!r}",
            )
        placed = msgspec.structs.replace(attachment, ifname=name)
        taken[name] = placed
        plan.append(placed)
    return plan


def _lower_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {_lower_first(key): _lower_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_lower_keys(item) for item in value]
    return value


def _lower_first(key: Any) -> Any:
    return key[:1].lower() + key[1:] if isinstance(key, str) else key
