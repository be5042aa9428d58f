"""Which policies select a pod's interface, and who a rule's peers are on that network.

NetworkPolicy's selection, per network: a policy in the pod's namespace selects the
pod's interface on network N when `policy-for` names N and its podSelector matches the
pod's labels. A peer is an ipBlock (minus its exceptions), or the pods its selectors
pick: podSelector alone means the policy's namespace, namespaceSelector alone every pod
of the matching namespaces, both together the matching pods of the matching namespaces.
A peer pod counts with its addresses on the SAME network, read from its network-status
annotation (and, for this node's pods, from the attachment cache, which is there before
the annotation comes back through the watch).

Pure: no I/O."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Literal

from meta.model import NETWORK_STATUS_ANNOTATION
from meta.policy.model import Network, Peer, Policy
from meta.source import Namespace, Pod

log = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Direction = Literal["Ingress", "Egress"]


@dataclasses.dataclass(frozen=True)
class World:
    """What selection looks at: every policy, namespace and pod the daemon knows, and the
    addresses this node's attachments got (pod "ns/name" -> network -> addresses)."""

    policies: Sequence[Policy]
    namespaces: Mapping[str, Namespace]
    pods: Sequence[Pod]
    local_addresses: Mapping[str, Mapping[str, Sequence[Address]]] = dataclasses.field(default_factory=dict)
    # pod "ns/name" -> network -> addresses, filled on first use (network-status parsed once)
    _addresses: dict[str, dict[str, list[Address]]] = dataclasses.field(default_factory=dict, compare=False)
    # (id of a rule's peers, network, policy namespace) -> the peer set's elements, per family
    peer_sets: dict[tuple[int, str, str], dict[int, tuple[str, ...]]] = dataclasses.field(
        default_factory=dict, compare=False
    )

    def pods_in(self, namespace: str) -> Iterator[Pod]:
        return (pod for pod in self.pods if pod.namespace == namespace)


def selecting(world: World, pod: Pod, network: str, direction: Direction) -> list[Policy]:
    """The policies that select `pod`'s interface on `network` for `direction`, by key."""
    return sorted(
        (
            policy
            for policy in world.policies
            if policy.namespace == pod.namespace
            and network in policy.networks
            and policy.isolates(direction)
            and policy.spec.pod_selector.matches(pod.labels)
        ),
        key=lambda policy: policy.key,
    )


def applying(world: World, pod: Pod, network: str) -> list[str]:
    """Keys of every policy that selects the interface, in either direction."""
    directions: tuple[Direction, ...] = ("Ingress", "Egress")
    keys = {p.key for d in directions for p in selecting(world, pod, network, d)}
    return sorted(keys)


def peer_pods(world: World, peer: Peer, policy_namespace: str) -> list[Pod]:
    """The pods a peer's selectors pick (none for a pure ipBlock peer)."""
    if peer.pod_selector is None and peer.namespace_selector is None:
        return []
    if peer.namespace_selector is None:
        candidates: Iterable[Pod] = world.pods_in(policy_namespace)
    else:
        selector = peer.namespace_selector
        chosen = {
            name for name, namespace in world.namespaces.items() if selector.matches(namespace.labels)
        }
        candidates = (pod for pod in world.pods if pod.namespace in chosen)
    if peer.pod_selector is None:
        return list(candidates)
    pod_selector = peer.pod_selector
    return [pod for pod in candidates if pod_selector.matches(pod.labels)]


def peer_networks(peer: Peer) -> list[Network]:
    return peer.ip_block.networks() if peer.ip_block is not None else []


def addresses_on(world: World, pod: Pod, network: str) -> list[Address]:
    """`pod`'s addresses on `network`: its network-status entries named so, plus what
    this node's cache recorded for it."""
    key = f"{pod.namespace}/{pod.name}"
    networks = world._addresses.get(key)
    if networks is None:
        networks = {name: list(addresses) for name, addresses in world.local_addresses.get(key, {}).items()}
        for entry in _network_status(pod):
            ips = entry.get("ips")
            for text in ips if isinstance(ips, list) else []:
                try:
                    networks.setdefault(str(entry.get("name")), []).append(ipaddress.ip_address(str(text)))
                except ValueError:
                    continue
        world._addresses[key] = networks
    return sorted(set(networks.get(network, ())), key=lambda address: (address.version, address))


def _network_status(pod: Pod) -> list[dict[str, object]]:
    text = pod.annotations.get(NETWORK_STATUS_ANNOTATION)
    if not text:
        return []
    try:
        doc = json.loads(text)
    except ValueError:
        log.debug("pod %s/%s: network-status is not JSON; no addresses from it", pod.namespace, pod.name)
        return []
    return [entry for entry in doc if isinstance(entry, dict)] if isinstance(doc, list) else []
