"""meta/policy: parsing MultiNetworkPolicy, selection and the compiled nft ruleset (pure;
the traffic tests in tests/kube/test_policy_traffic.py judge what the rules do)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meta.policy import compile as rules
from meta.policy import model, select
from meta.source import Namespace, Pod, PolicyObject

STATUS = "k8s.v1.cni.cncf.io/network-status"
NET = "default/net-a"


def policy(spec: dict[str, Any], *, name: str = "p", namespace: str = "default", policy_for: str = NET) -> model.Policy:
    return model.parse(PolicyObject(namespace, name, {model.POLICY_FOR_ANNOTATION: policy_for}, spec))


def pod(name: str, *, namespace: str = "default", labels: dict[str, str] | None = None,
        ips: dict[str, list[str]] | None = None, ports: dict[str, tuple[str, int]] | None = None) -> Pod:
    status = [{"name": network, "ips": addresses} for network, addresses in (ips or {}).items()]
    return Pod(namespace, name, annotations={STATUS: json.dumps(status)}, labels=labels or {},
               named_ports=ports or {})


def world(policies: list[model.Policy], pods: list[Pod]) -> select.World:
    namespaces = {"default": Namespace("default"), "other": Namespace("other", {"team": "blue"})}
    return select.World(policies=policies, namespaces=namespaces, pods=pods)


NET1 = [rules.LocalInterface("net1", NET)]


def test_policy_for_names_networks_with_or_without_a_namespace() -> None:
    assert model.policy_for("ns", {model.POLICY_FOR_ANNOTATION: " a , other/b,"}) == {"ns/a", "other/b"}
    assert model.policy_for("ns", {}) == frozenset()


def test_policy_types_default_as_network_policy_does() -> None:
    assert policy({"podSelector": {}}).isolates("Ingress")
    assert not policy({"podSelector": {}}).isolates("Egress")
    assert policy({"podSelector": {}, "egress": [{}]}).isolates("Egress")
    assert not policy({"podSelector": {}, "policyTypes": ["Egress"]}).isolates("Ingress")


def test_a_bad_policy_is_refused_naming_the_field() -> None:
    with pytest.raises(model.PolicyError, match=r"spec\.ingress\.0\.ports\.0\.port"):
        policy({"ingress": [{"ports": [{"port": 70000}]}]})
    with pytest.raises(model.PolicyError, match="cidr"):
        policy({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]})


def test_label_selectors_take_match_labels_and_expressions() -> None:
    selector = model.LabelSelector.model_validate({
        "matchLabels": {"app": "db"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                             {"key": "legacy", "operator": "DoesNotExist"}],
    })
    assert selector.matches({"app": "db", "tier": "a"})
    assert not selector.matches({"app": "db", "tier": "c"})
    assert not selector.matches({"app": "db", "tier": "a", "legacy": "1"})
    assert model.LabelSelector().matches({})


def test_ip_block_except_leaves_disjoint_prefixes() -> None:
    block = model.IPBlock.model_validate({"cidr": "10.0.0.0/24", "except": ["10.0.0.128/25", "10.0.0.5/32"]})
    kept = block.networks()
    assert sum(net.num_addresses for net in kept) == 128 - 1
    assert not any(net.overlaps(other) for i, net in enumerate(kept) for other in kept[i + 1:])


def test_a_pod_no_policy_selects_gets_no_table() -> None:
    other_network = policy({"podSelector": {}}, policy_for="default/net-b")
    other_namespace = policy({"podSelector": {}}, namespace="other")
    ruleset = rules.compile_pod(world([other_network, other_namespace], []), pod("me"), NET1)
    assert ruleset.empty and ruleset.replace_commands() == rules.remove_commands()


def test_peers_count_with_their_addresses_on_that_network_only() -> None:
    allow = policy({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"r": "c"}}}]}]})
    peer = pod("peer", labels={"r": "c"}, ips={NET: ["10.0.0.7", "fd00::7"], "default/net-b": ["10.1.0.7"]})
    ruleset = rules.compile_pod(world([allow], [pod("me"), peer]), pod("me"), NET1)
    assert ruleset.sets == {"in-net1-0-v4": ("10.0.0.7/32",), "in-net1-0-v6": ("fd00::7/128",)}
    assert ruleset.policies == {"net1": ["default/p"]}
    chains = [c["add"]["chain"]["name"] for c in ruleset.structure if "chain" in c.get("add", {})]
    assert chains == ["input", "output", "in-net1"], "egress is not isolated: no out- chain"


def test_a_peer_joining_is_a_set_update_and_a_new_rule_a_replacement() -> None:
    allow = policy({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})
    me = pod("me")
    before = rules.compile_pod(world([allow], [me]), me, NET1)
    after = rules.compile_pod(world([allow], [me, pod("new", ips={NET: ["10.0.0.9"]})]), me, NET1)
    update = after.set_update_commands(before)
    assert update is not None and [list(c) for c in update] == [["flush"], ["add"]]
    assert update[1]["add"]["element"]["elem"] == ["10.0.0.9"]
    wider = policy({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}, {"ports": [{"port": 53}]}]})
    assert rules.compile_pod(world([wider], [me]), me, NET1).set_update_commands(before) is None


def test_named_ports_resolve_on_the_target_for_ingress_and_on_each_peer_for_egress() -> None:
    spec = {
        "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"ports": [{"port": "web"}, {"protocol": "UDP", "port": "web"}]}],
        "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": "api"}]}],
    }
    me = pod("me", ports={"web": ("TCP", 8080)})
    a = pod("a", ips={NET: ["10.0.0.2"]}, ports={"api": ("TCP", 9000)})
    b = pod("b", ips={NET: ["10.0.0.3"]}, ports={"api": ("TCP", 9001)})
    ruleset = rules.compile_pod(world([policy(spec)], [me, a, b]), me, NET1)
    text = json.dumps(ruleset.structure)
    assert '"right": 8080' in text and text.count('"right": "udp"') == 0, "UDP 'web' does not exist on the pod"
    assert ruleset.sets["out-net1-0-v4"] == ("10.0.0.2/32",) and ruleset.sets["out-net1-1-v4"] == ("10.0.0.3/32",)
    assert '"right": 9000' in text and '"right": 9001' in text


def test_end_port_makes_a_range_and_every_chain_keeps_replies_and_neighbour_discovery() -> None:
    spec = {"podSelector": {}, "ingress": [{"ports": [{"protocol": "SCTP", "port": 100, "endPort": 200}]}]}
    ruleset = rules.compile_pod(world([policy(spec)], []), pod("me"), NET1)
    text = json.dumps(ruleset.structure)
    assert '{"range": [100, 200]}' in text and '"right": "sctp"' in text
    assert '"established", "related"' in text and "nd-neighbor-solicit" in text
    assert '"right": "net1"' in text and "eth0" not in text
