"""Multus's `auxiliaryCNIChainName` and its default-network file fallback: two ways a
Multus config names a network by a file in `confDir` rather than by a
NetworkAttachmentDefinition.

- `auxiliaryCNIChainName`: a conflist in confDir (by its `name`, or its file name without
  the extension) that Multus runs after the cluster network, on the same interface, with
  the cluster network's result as prevResult (it is for chained plugins: tuning, sbr,
  route-override). netplex appends its plugins to the cluster network's chain, so they
  run in that order, get that prevResult, are DELed first, CHECKed, and recorded in the
  same cache entry. The difference: they run under the cluster network's name and
  cniVersion, not the auxiliary list's own (a chained plugin keyed by network name, such
  as a firewall, sees the cluster network's name).
- `v1.multus-cni.io/default-network` naming a network that is no
  NetworkAttachmentDefinition: Multus then looks for a config of that name in confDir,
  and so does netplex."""

from __future__ import annotations

import msgspec

from cni.errors import CniError, Code
from meta import netconfs
from meta.config import MetaConf
from meta.model import Attachment, NetworkSelection


def with_auxiliary_chain(conf: MetaConf, cluster: Attachment) -> Attachment:
    """The cluster network with the auxiliary chain's plugins after its own."""
    name = conf.auxiliary_cni_chain_name
    if not name:
        return cluster
    aux = netconfs.find_by_name(conf.conf_dir, name, cni_version=conf.cni_version, match_file_name=True)
    if aux is None:
        raise CniError(
            Code.INVALID_NETWORK_CONFIG,
            f"auxiliaryCNIChainName: no CNI config named {name!r} in confDir {conf.conf_dir!r}",
        )
    chain = cluster.conflist.replace(plugins=[*cluster.conflist.plugins, *aux.plugins])
    return msgspec.structs.replace(cluster, conflist=chain)


def default_network_file(conf: MetaConf, element: NetworkSelection) -> Attachment | None:
    """The default-network override's config from confDir, or None when there is none."""
    found = netconfs.find_by_name(conf.conf_dir, element.name, cni_version=conf.cni_version, match_file_name=True)
    if found is None:
        return None
    return Attachment(
        network=found.name, ifname="", conflist=found, selection=element,
        capability_args=element.capability_args(), origin=f"file:{conf.conf_dir}",
    )
