"""Which attachment a host veth belongs to: the alias bridge ADD writes on it, and the GC of
host veths that attachments unknown to the runtime left behind.

Several networks may share one bridge, and a veth's name (`common.host_veth_name`, a hash)
cannot be turned back into its attachment. So ADD sets the host end's alias (IFLA_IFALIAS)
to `netplex:<network>:<containerID>/<ifname>`, where `<network>` is the network's part of
netplex's nftables tags (`masq.network_part`: the name, or `#` and a hash of a long or
unusual one) and the attachment part is `#` and a hash when the plain form would not fit
in `links.MAX_ALIAS`. GC deletes a veth only when it is a port of the network's bridge,
its alias carries this network's tag, and its attachment is not in the valid list; a link
without such an alias, or with another network's, is never touched. Netlink failures
propagate as `NetlinkFailure`; the plugin turns them into CNI errors.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from delegates import masq
from delegates.netlink import links

log = logging.getLogger(__name__)

ALIAS_PREFIX = "netplex"


def alias_for(network: str, container_id: str, ifname: str) -> str:
    """The alias of the host veth of one attachment: deterministic, at most MAX_ALIAS bytes."""
    head = f"{ALIAS_PREFIX}:{masq.network_part(network)}:"
    plain = f"{container_id}/{ifname}"
    if "\0" not in plain and len((head + plain).encode()) <= links.MAX_ALIAS:
        return head + plain
    return head + "#" + hashlib.sha256(plain.encode()).hexdigest()[:32]


def owner_of(alias: str | None) -> tuple[str, str] | None:
    """(network part, attachment part) of an alias `alias_for` made; None for any other."""
    if not alias:
        return None
    parts = alias.split(":", 2)
    if len(parts) != 3 or parts[0] != ALIAS_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def leaked_veths(bridge: str, network: str, valid: Iterable[tuple[str, str]]) -> list[str]:
    """Names of this network's host veths on `bridge` whose attachment is not in `valid`
    ((containerID, ifname) pairs), in the node's namespace; [] when the bridge is gone."""
    ports = links.list_links(None)
    bridge_link = next((link for link in ports if link.name == bridge and link.kind == "bridge"), None)
    if bridge_link is None:
        return []
    ours = masq.network_part(network)
    keep = {alias_for(network, container_id, ifname) for container_id, ifname in valid}
    leaked = []
    for link in ports:
        owner = owner_of(link.alias)
        if (
            link.kind == "veth"
            and link.master_index == bridge_link.index
            and owner is not None
            and owner[0] == ours
            and link.alias not in keep
        ):
            leaked.append(link.name)
    return leaked


def collect(bridge: str, network: str, valid: Iterable[tuple[str, str]]) -> list[str]:
    """Delete the host veths `leaked_veths` names (each takes its pod end with it).

    Returns the names deleted; one already gone is skipped. A netlink failure propagates
    (as `NetlinkFailure`) after the veths before it were deleted.
    """
    deleted = []
    for name in leaked_veths(bridge, network, valid):
        if links.delete_if_exists(None, name):
            deleted.append(name)
    return deleted
