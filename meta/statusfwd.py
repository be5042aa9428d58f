"""STATUS forwarding: netplex is ready only when the cluster network is (as Multus, which
forwards its cluster network's STATUS answer to the runtime).

The cluster network is found as ADD finds it, without a pod: `delegates[0]`, or
`clusterNetwork` as a path, a config in confDir by name, or a NetworkAttachmentDefinition
in netplexNamespace (read through the source; when the API cannot be read, STATUS is not
failed for it: the runtime would stop every pod on the node for an API hiccup). Its
plugins get STATUS in order (cni.chain.each: lists older than CNI 1.1.0 have no STATUS
and count as ready); the first error is answered with its own code, prefixed with the
network's name. Built-in delegates answer for themselves when they implement STATUS.

Never imports `kubernetes` itself: the source is the caller's."""

from __future__ import annotations

import logging
from collections.abc import Callable

from cni import chain, skel
from cni.config import Conflist
from cni.errors import CniError
from cni.invoke import Builtins
from meta import attach, config, netconfs
from meta.source import Source, SourceError

log = logging.getLogger(__name__)


def forward(
    conf: config.MetaConf,
    args: skel.CmdArgs,
    *,
    builtins: Builtins | None,
    source_factory: Callable[[], Source] | None,
) -> None:
    """Raise the cluster network's STATUS error, if it answers one."""
    network = cluster_network(conf, source_factory)
    if network is None:
        return
    path = (conf.bin_dir, *(p for p in args.path if p != conf.bin_dir))  # as ADD finds delegates
    try:
        chain.each(
            network, args.replace(command="STATUS", path=path),
            builtins=_prefer_binaries(builtins, path), timeout=conf.delegate_timeout,
        )
    except CniError as err:
        raise err.prefixed(f"cluster network {network.name!r}") from err


def _prefer_binaries(builtins: Builtins | None, path: tuple[str, ...]) -> Builtins | None:
    """The node's own cluster network runs the binary it installed, as on ADD."""
    return None if builtins is None else attach.preferring_binaries(builtins, path)


def cluster_network(conf: config.MetaConf, source_factory: Callable[[], Source] | None) -> Conflist | None:
    """The cluster network's config, or None when it cannot be known without the pod."""
    if not conf.cluster_network:
        networks = conf.delegate_networks()
        return networks[0] if networks else None
    reference = conf.cluster_network
    if "/" in reference:
        return netconfs.load_path(reference, cni_version=conf.cni_version)
    found = netconfs.find_by_name(conf.conf_dir, reference, cni_version=conf.cni_version, match_file_name=True)
    if found is not None or source_factory is None:
        return found
    try:
        nad = source_factory().get_attachment(conf.netplex_namespace, reference)
    except SourceError as err:
        log.info("STATUS: cluster network %r not readable, not forwarded: %s", reference, err)
        return None
    if not nad.config.strip():
        return None
    return netconfs.parse_config(nad.config, where=f"NetworkAttachmentDefinition {nad.namespace}/{nad.name}",
                                 default_name=nad.name, cni_version=conf.cni_version)
