"""One pod's policy ruleset, as nft JSON: table `inet netplex-policy` in the pod's netns.

Layout (only interfaces some policy selects appear; a pod none selects gets no table):

    table inet netplex-policy
      set in-net1-0-v4 { type ipv4_addr; flags interval }   peers of one rule, one family
      chain input  { hook input,  priority 0, policy accept;  iifname "net1" jump in-net1 }
      chain output { hook output, priority 0, policy accept;  oifname "net1" jump out-net1 }
      chain in-net1 {
        ct state established,related accept        replies to allowed flows, existing flows
        icmpv6 type { nd-* } accept                IPv6 neighbour discovery keeps working
        ip saddr @in-net1-0-v4 meta l4proto tcp th dport 8080 accept    one per rule, port, family
        counter drop                                the direction is isolated
      }

Everything else of the pod (eth0, lo, any interface no policy names) never matches a
jump, and the chains' policy is accept. The ruleset splits into its *structure* (table,
chains, rules, set declarations) and its *set elements*: when only elements changed (a
peer pod came or went) the engine updates just those sets; otherwise it replaces the
table. Both are one nft transaction. Pure: no I/O."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Iterable, Sequence
from typing import Any

from meta.policy import select
from meta.policy.model import Network, Policy, PolicyPort, Rule
from meta.policy.select import Address, Direction, World
from meta.source import Pod

TABLE = "netplex-policy"
FAMILY = "inet"
ND_TYPES = ["nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-solicit", "nd-router-advert", "nd-redirect"]
PortRange = tuple[str, int, int] | tuple[str, None, None]  # (protocol, first, last); None: every port


@dataclasses.dataclass(frozen=True)
class LocalInterface:
    """An interface netplex attached to a pod on this node."""

    ifname: str
    network: str  # "namespace/name" of its NAD


@dataclasses.dataclass
class Ruleset:
    """A pod's compiled ruleset: structure commands, set contents, what applies where."""

    structure: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    sets: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # name -> sorted elements
    policies: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # ifname -> policy keys
    rules: int = 0

    @property
    def empty(self) -> bool:
        return not self.structure

    def fingerprint(self) -> str:
        return json.dumps(self.structure, sort_keys=True)

    def replace_commands(self) -> list[dict[str, Any]]:
        """Delete and rebuild the table, in one transaction (`add` first: delete needs it)."""
        commands = [*remove_commands()]
        if self.empty:
            return commands
        commands.append({"add": {"table": {"family": FAMILY, "name": TABLE}}})
        commands.extend(self.structure)
        commands.extend(_elements(name, elements) for name, elements in sorted(self.sets.items()) if elements)
        return commands

    def set_update_commands(self, old: Ruleset) -> list[dict[str, Any]] | None:
        """Only the changed sets' contents (flush and refill), or None when the structure
        differs and the table must be replaced."""
        if self.fingerprint() != old.fingerprint():
            return None
        commands: list[dict[str, Any]] = []
        for name, elements in sorted(self.sets.items()):
            if old.sets.get(name) == elements:
                continue
            commands.append({"flush": {"set": {"family": FAMILY, "table": TABLE, "name": name}}})
            if elements:
                commands.append(_elements(name, elements))
        return commands


def remove_commands() -> list[dict[str, Any]]:
    """Remove the table if it exists (one transaction; a missing table is no error)."""
    table = {"family": FAMILY, "name": TABLE}
    return [{"add": {"table": dict(table)}}, {"delete": {"table": dict(table)}}]


def compile_pod(world: World, pod: Pod, interfaces: Sequence[LocalInterface]) -> Ruleset:
    """The ruleset for `pod`'s `interfaces` under every policy in `world`."""
    out = Ruleset()
    jumps: dict[str, list[dict[str, Any]]] = {"input": [], "output": []}
    chains: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for iface in sorted(interfaces, key=lambda i: i.ifname):
        applying = select.applying(world, pod, iface.network)
        if applying:
            out.policies[iface.ifname] = applying
        directions: tuple[Direction, ...] = ("Ingress", "Egress")
        for direction in directions:
            policies = select.selecting(world, pod, iface.network, direction)
            if not policies:
                continue
            builder = _Chain(world, pod, iface, direction, out)
            for policy in policies:
                rule_list = policy.spec.ingress if direction == "Ingress" else policy.spec.egress
                for rule in rule_list:
                    builder.add_rule(policy, rule)
            chains.append(_chain(builder.name))
            rules.extend(builder.finish())
            hook = "input" if direction == "Ingress" else "output"
            key = "iifname" if direction == "Ingress" else "oifname"
            jumps[hook].append(_rule(hook, [_meta_match(key, iface.ifname), {"jump": {"target": builder.name}}]))
    if not chains:
        return Ruleset(policies=out.policies)
    for hook in ("input", "output"):
        out.structure.append(_base_chain(hook))
    out.structure.extend(chains)
    for name in sorted(out.sets):
        version = 4 if name.endswith("-v4") else 6
        out.structure.insert(0, _set_decl(name, version))
    out.structure.extend(jumps["input"] + jumps["output"] + rules)
    out.rules = len(jumps["input"]) + len(jumps["output"]) + len(rules)
    return out


class _Chain:
    """The rules of one interface and direction."""

    def __init__(self, world: World, pod: Pod, iface: LocalInterface, direction: Direction, out: Ruleset) -> None:
        self.world = world
        self.pod = pod
        self.iface = iface
        self.direction = direction
        self.out = out
        self.name = ("in-" if direction == "Ingress" else "out-") + iface.ifname
        self.field = "saddr" if direction == "Ingress" else "daddr"
        self.rules: list[dict[str, Any]] = [
            self._rule([{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
                        {"accept": None}]),
            self._rule([_payload_match("icmpv6", "type", {"set": ND_TYPES}), {"accept": None}]),
        ]
        self.sets = 0

    def add_rule(self, policy: Policy, rule: Rule) -> None:
        peers = rule.from_ if self.direction == "Ingress" else rule.to
        numbered, named = self._ports(rule.ports)
        if peers is None or len(peers) == 0:  # every peer
            for port in numbered:
                self.rules.append(self._rule([*_port_match(port), {"accept": None}]))
            if named:
                self._named_egress(policy, None, named)
            return
        if numbered:
            memo = (id(peers), self.iface.network, policy.namespace)  # the same for every pod: once
            elements = self.world.peer_sets.get(memo)
            if elements is None:
                addresses: list[Address] = []
                networks: list[Network] = []
                for peer in peers:
                    networks.extend(select.peer_networks(peer))
                    for peer_pod in select.peer_pods(self.world, peer, policy.namespace):
                        addresses.extend(select.addresses_on(self.world, peer_pod, self.iface.network))
                elements = self.world.peer_sets[memo] = _elements_of(addresses, networks)
            names = self._new_sets(elements)
            for port in numbered:
                for name in names:
                    self.rules.append(self._rule([self._addr_match(name), *_port_match(port), {"accept": None}]))
        if named:
            self._named_egress(policy, peers, named)

    def finish(self) -> list[dict[str, Any]]:
        return [*self.rules, self._rule([{"counter": None}, {"drop": None}])]

    def _ports(self, ports: Sequence[PolicyPort]) -> tuple[list[PortRange], list[PolicyPort]]:
        """Numbered port ranges (named ones resolved against this pod for ingress), and
        the named ports of an egress rule (resolved per peer)."""
        if not ports:
            return [("any", None, None)], []
        numbered: list[PortRange] = []
        named: list[PolicyPort] = []
        for port in ports:
            proto = port.protocol.lower()
            if port.port is None:
                numbered.append((proto, None, None))
            elif isinstance(port.port, int):
                numbered.append((proto, port.port, max(port.port, port.end_port or port.port)))
            elif port.port.isdigit():
                numbered.append((proto, int(port.port), int(port.port)))
            elif self.direction == "Ingress":
                found = self.pod.named_ports.get(port.port)
                if found is not None and found[0].lower() == proto:
                    numbered.append((proto, found[1], found[1]))
            else:
                named.append(port)
        return numbered, named

    def _named_egress(self, policy: Policy, peers: Sequence[Any] | None, named: Sequence[PolicyPort]) -> None:
        """Egress to named ports: each destination pod's own number for the name."""
        if peers is None:
            pods: list[Pod] = list(self.world.pods)
        else:
            pods = [p for peer in peers for p in select.peer_pods(self.world, peer, policy.namespace)]
        for port in named:
            proto = port.protocol.lower()
            groups: dict[int, list[Address]] = {}
            for peer_pod in pods:
                found = peer_pod.named_ports.get(str(port.port))
                if found is not None and found[0].lower() == proto:
                    groups.setdefault(found[1], []).extend(
                        select.addresses_on(self.world, peer_pod, self.iface.network)
                    )
            for number, addresses in sorted(groups.items()):
                for name in self._new_sets(_elements_of(addresses, [])):
                    self.rules.append(
                        self._rule([self._addr_match(name), *_port_match((proto, number, number)), {"accept": None}])
                    )

    def _new_sets(self, elements: dict[int, tuple[str, ...]]) -> list[str]:
        """Two named sets (IPv4, IPv6) holding these elements; their names."""
        index = self.sets
        self.sets += 1
        names = []
        for version in (4, 6):
            name = f"{self.name}-{index}-v{version}"
            self.out.sets[name] = elements[version]
            names.append(name)
        return names

    def _addr_match(self, set_name: str) -> dict[str, Any]:
        proto = "ip" if set_name.endswith("-v4") else "ip6"
        return _payload_match(proto, self.field, f"@{set_name}")

    def _rule(self, expr: list[dict[str, Any]]) -> dict[str, Any]:
        return _rule(self.name, expr)


def _elements_of(addresses: Iterable[Address], networks: Iterable[Network]) -> dict[int, tuple[str, ...]]:
    """Set elements per family: the networks (disjoint after collapsing) and every address
    not already inside one of them (an interval set refuses overlaps), sorted."""
    found: dict[int, tuple[str, ...]] = {}
    for version, host_len in ((4, 32), (6, 128)):
        nets = [n for n in networks if n.version == version]
        if nets:
            collapsed = list(ipaddress.collapse_addresses(nets))  # type: ignore[type-var]
            ranges = [(int(n.network_address), int(n.broadcast_address)) for n in collapsed]
            kept = {str(n) for n in collapsed}
        else:
            ranges, kept = [], set()
        for address in addresses:
            if address.version == version and not any(lo <= int(address) <= hi for lo, hi in ranges):
                kept.add(f"{address}/{host_len}")
        found[version] = tuple(sorted(kept))
    return found


def _port_match(port: PortRange) -> list[dict[str, Any]]:
    proto, first, last = port
    if proto == "any":
        return []
    matches: list[dict[str, Any]] = [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": proto}}]
    if first is not None and last is not None:
        right: Any = first if first == last else {"range": [first, last]}
        matches.append(_payload_match("th", "dport", right))
    return matches


def _payload_match(protocol: str, field: str, right: Any) -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"payload": {"protocol": protocol, "field": field}}, "right": right}}


def _meta_match(key: str, value: str) -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"meta": {"key": key}}, "right": value}}


def _rule(chain: str, expr: list[dict[str, Any]]) -> dict[str, Any]:
    return {"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}}}


def _chain(name: str) -> dict[str, Any]:
    return {"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name}}}


def _base_chain(hook: str) -> dict[str, Any]:
    return {"add": {"chain": {"family": FAMILY, "table": TABLE, "name": hook, "type": "filter", "hook": hook,
                              "prio": 0, "policy": "accept"}}}


def _set_decl(name: str, version: int) -> dict[str, Any]:
    kind = "ipv4_addr" if version == 4 else "ipv6_addr"
    return {"add": {"set": {"family": FAMILY, "table": TABLE, "name": name, "type": kind, "flags": ["interval"]}}}


def _elements(name: str, elements: Sequence[str]) -> dict[str, Any]:
    elem: list[Any] = []
    for text in elements:
        net = ipaddress.ip_network(text)
        full = net.prefixlen == net.max_prefixlen
        elem.append(str(net.network_address) if full else {"prefix": {"addr": str(net.network_address),
                                                                       "len": net.prefixlen}})
    return {"add": {"element": {"family": FAMILY, "table": TABLE, "name": name, "elem": elem}}}
