"""MultiNetworkPolicy enforced by `netplex daemon`, judged by real traffic: pods attached
through the shim and the daemon (bridge and macvlan networks from the API double), a
tiny echo server in one pod's namespace, and ICMP/TCP/UDP probes from the others.

Policies change through the API double; the tests wait for the traffic to change with
a deadline (tests/kube/policy_probe.py), never a fixed sleep. How fast that happens is
the benchmark's business (bench/policy.py), not a test's."""

from __future__ import annotations

import dataclasses
import os
import random
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from delegates.netlink import netns
from tests.kube.conftest import MetaScene, ScenePod
from tests.kube.policy_probe import Conversation, Listener, eventually, listeners, ping, tcp, udp
from tests.kube.runners_daemon import DaemonRunner
from tests.netns.conftest import Uplink

pytestmark = pytest.mark.netns
_ = listeners  # the fixture

NETWORKS = "k8s.v1.cni.cncf.io/networks"
PORT = 8080
DENY_INGRESS: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress"]}
ALLOW_CLIENTS: dict[str, Any] = {
    "podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}],
}


@dataclasses.dataclass
class Env:
    scene: MetaScene
    runner: DaemonRunner
    pods: list[ScenePod] = dataclasses.field(default_factory=list)

    @property
    def api(self) -> Any:
        return self.scene.api

    def pod(self, name: str, *, namespace: str = "default", labels: dict[str, str] | None = None,
            networks: str = "default/net-a") -> ScenePod:
        uid = str(uuid.uuid4())
        self.api.add_pod(namespace, name, annotations={NETWORKS: networks}, labels=labels or {}, uid=uid)
        pod = ScenePod(namespace=namespace, name=name, uid=uid, netns=self.scene.new_ns("npp-", lo_up=True),
                       container_id=f"c{uuid.uuid4().hex}")
        answer = self.runner.add(self.scene.conf(), container_id=pod.container_id, netns=pod.netns,
                                 cni_args=pod.cni_args)
        assert answer.rc == 0, (answer.doc, self.runner.last_stderr[-3000:], self.runner.last_daemon_log[-3000:])
        self.pods.append(pod)
        return pod

    def delete(self, pod: ScenePod) -> None:
        answer = self.runner.delete(self.scene.conf(), container_id=pod.container_id, netns=pod.netns,
                                    cni_args=pod.cni_args)
        assert answer.rc == 0, answer.doc
        self.pods.remove(pod)
        self.api.delete_pod(pod.namespace, pod.name)

    def policy(self, name: str, spec: dict[str, Any], *, namespace: str = "default",
               policy_for: str = "default/net-a") -> None:
        self.api.add_policy(namespace, name, spec, policy_for=policy_for)


def ip(pod: ScenePod, ifname: str = "net1", version: int = 4) -> str:
    for cidr in pod.addresses().get(ifname, []):
        address = cidr.split("/")[0]
        if (":" in address) == (version == 6):
            return address
    raise AssertionError(f"{pod.name} has no IPv{version} address on {ifname}: {pod.addresses()}")


def table(pod: ScenePod) -> str:
    """The pod's nftables ruleset as text (an extra witness; the traffic is the judge)."""
    argv = ["ip", "netns", "exec", os.path.basename(pod.netns), "nft", "list", "ruleset"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def env(scene: MetaScene, host_ns: str, tmp_path: Path) -> Iterator[Env]:
    """The scene with dual-stack bridge networks net-a and net-b in `default`, namespaces
    `default` and `other`, and a daemon whose policy engine watches the double."""
    ranges_a = [[{"subnet": "10.94.0.0/24"}], [{"subnet": "fd94::/64"}]]
    conf_a = scene.bridge("net-a", "npna0", "10.94.0.0/24")
    conf_a["ipam"] = {"type": "host-local", "ranges": ranges_a, "dataDir": str(scene.data_dir)}
    scene.add_nad("default", "net-a", conf_a)
    scene.add_nad("default", "net-b", scene.bridge("net-b", "npnb0", "10.95.0.0/24"))
    scene.api.add_namespace("default")
    scene.api.add_namespace("other", labels={"team": "blue"})
    scene.api.add_namespace("kube-system")
    workdir = tmp_path / "policy-daemon"
    workdir.mkdir()
    port = random.randint(20000, 60000)  # the node namespace is ours alone
    runner = DaemonRunner(node_ns=host_ns, workdir=workdir,
                          daemon_keys={"cniDir": str(scene.cni_dir), "metricsAddress": f"127.0.0.1:{port}"})
    made = Env(scene=scene, runner=runner)
    try:
        yield made
    finally:
        try:
            for pod in list(made.pods):
                made.runner.delete(scene.conf(), container_id=pod.container_id, netns=pod.netns,
                                   cni_args=pod.cni_args)
        finally:
            runner.close()


def test_without_policies_every_pod_talks_and_no_rules_exist(env: Env, listeners: Callable[..., Listener]) -> None:
    server, client = env.pod("server"), env.pod("client")
    listeners(server.netns, tcp=(PORT,), udp=(PORT,))
    assert ping(client.netns, ip(server))
    assert tcp(client.netns, ip(server), PORT)
    assert udp(client.netns, ip(server), PORT)
    assert "netplex-policy" not in table(server) and "netplex-policy" not in table(client)


def test_deny_all_ingress_on_net1_keeps_eth0_and_egress_working(
    env: Env, listeners: Callable[..., Listener]
) -> None:
    server, client = env.pod("server", labels={"app": "db"}), env.pod("client")
    listeners(server.netns, tcp=(PORT,))
    assert tcp(client.netns, ip(server), PORT)
    env.policy("deny", {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]})
    eventually(lambda: not tcp(client.netns, ip(server), PORT), what="net1 ingress denied")
    assert not ping(client.netns, ip(server))
    assert tcp(client.netns, ip(server, "eth0"), PORT), "the cluster interface must stay untouched"
    assert ping(server.netns, ip(client)), "egress (and its replies) stays allowed"
    assert "netplex-policy" not in table(client), "a pod no policy selects keeps no rules"


def test_a_new_pod_comes_up_already_enforced(env: Env, listeners: Callable[..., Listener]) -> None:
    client = env.pod("client")
    env.policy("deny", DENY_INGRESS)
    eventually(lambda: "netplex-policy" in table(client), what="the existing pod enforced")
    server = env.pod("server")  # the ADD returns only once its rules are in place
    assert 'iifname "net1" jump in-net1' in table(server)
    listeners(server.netns, tcp=(PORT,))
    assert not tcp(client.netns, ip(server), PORT)


def test_allow_from_pods_with_a_label_and_from_a_namespace(env: Env, listeners: Callable[..., Listener]) -> None:
    server = env.pod("server", labels={"app": "db"})
    friend, stranger = env.pod("friend", labels={"role": "client"}), env.pod("stranger")
    colleague = env.pod("colleague", namespace="other")
    listeners(server.netns, tcp=(PORT,))
    env.policy("allow-some", {
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"from": [
            {"podSelector": {"matchLabels": {"role": "client"}}},
            {"namespaceSelector": {"matchLabels": {"team": "blue"}}},
        ]}],
    })
    eventually(lambda: not tcp(stranger.netns, ip(server), PORT), what="the unlabelled pod denied")
    assert tcp(friend.netns, ip(server), PORT)
    assert ping(friend.netns, ip(server))
    assert tcp(colleague.netns, ip(server), PORT)


def test_ip_block_with_except_and_ports_with_end_port(env: Env, listeners: Callable[..., Listener]) -> None:
    server, first, second = env.pod("server"), env.pod("first"), env.pod("second")
    listeners(server.netns, tcp=(PORT, PORT + 5, 9000), udp=(5353,))
    env.policy("blocks", {
        "podSelector": {},
        "ingress": [{
            "from": [{"ipBlock": {"cidr": "10.94.0.0/24", "except": [f"{ip(second)}/32"]}}],
            "ports": [{"protocol": "TCP", "port": PORT, "endPort": PORT + 9}, {"protocol": "UDP", "port": 5353}],
        }],
    })
    eventually(lambda: not tcp(second.netns, ip(server), PORT), what="the excepted address denied")
    assert tcp(first.netns, ip(server), PORT) and tcp(first.netns, ip(server), PORT + 5)
    assert udp(first.netns, ip(server), 5353)
    assert not tcp(first.netns, ip(server), 9000), "a port outside the range"
    assert not ping(first.netns, ip(server)), "ICMP is not a listed port"


def test_egress_rules_limit_what_a_pod_reaches(env: Env, listeners: Callable[..., Listener]) -> None:
    client, allowed, other = env.pod("client", labels={"app": "web"}), env.pod("allowed", labels={"app": "db"}), \
        env.pod("other")
    listeners(allowed.netns, tcp=(PORT,))
    listeners(other.netns, tcp=(PORT,))
    env.policy("egress", {
        "podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": PORT}]}],
    })
    eventually(lambda: not tcp(client.netns, ip(other), PORT), what="egress to the other pod denied")
    assert tcp(client.netns, ip(allowed), PORT)
    assert tcp(client.netns, ip(other, "eth0"), PORT), "eth0 is never touched"
    assert ping(other.netns, ip(client)), "ingress to the client stays open (only egress is isolated)"


def test_ipv6_peers_are_matched_and_denied_like_ipv4(env: Env, listeners: Callable[..., Listener]) -> None:
    server = env.pod("server", labels={"app": "db"})
    friend, stranger = env.pod("friend", labels={"role": "client"}), env.pod("stranger")
    listeners(server.netns, tcp=(PORT,))
    eventually(lambda: tcp(friend.netns, ip(server, version=6), PORT), what="IPv6 reachable before the policy")
    env.policy("v6", {
        "podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}],
    })
    eventually(lambda: not tcp(stranger.netns, ip(server, version=6), PORT), what="IPv6 stranger denied")
    assert tcp(friend.netns, ip(server, version=6), PORT)
    assert ping(friend.netns, ip(server, version=6)), "neighbour discovery and ICMPv6 from a peer"


def test_a_policy_for_another_network_leaves_this_one_alone(env: Env, listeners: Callable[..., Listener]) -> None:
    both = "default/net-a,default/net-b"
    server, client = env.pod("server", networks=both), env.pod("client", networks=both)
    listeners(server.netns, tcp=(PORT,))
    env.policy("deny-b", DENY_INGRESS, policy_for="default/net-b")
    eventually(lambda: not tcp(client.netns, ip(server, "net2"), PORT), what="net-b denied")
    assert tcp(client.netns, ip(server, "net1"), PORT)
    assert "in-net2" in table(server) and "in-net1" not in table(server)


def test_a_change_is_enforced_and_an_established_flow_keeps_working(
    env: Env, listeners: Callable[..., Listener]
) -> None:
    server = env.pod("server")
    client, stranger = env.pod("client", labels={"role": "client"}), env.pod("stranger")
    listeners(server.netns, tcp=(PORT, PORT + 1))
    talk = Conversation(client.netns, ip(server), PORT)
    try:
        env.policy("clients", ALLOW_CLIENTS)
        eventually(lambda: not tcp(stranger.netns, ip(server), PORT), what="the stranger denied")
        assert talk.say("still there") == "still there", "an allowed flow survives the new ruleset"
        narrower = {**ALLOW_CLIENTS, "ingress": [{**ALLOW_CLIENTS["ingress"][0], "ports": [{"port": PORT}]}]}
        env.api.update_policy("default", "clients", narrower)  # new structure: the table is replaced
        eventually(lambda: not tcp(client.netns, ip(server), PORT + 1), what="the narrower policy enforced")
        assert talk.say("and now") == "and now", "the allowed flow survives the replacement"
        assert tcp(client.netns, ip(server), PORT)
    finally:
        talk.close()


def test_peers_joining_and_leaving_update_the_allowed_set(env: Env, listeners: Callable[..., Listener]) -> None:
    server = env.pod("server")
    listeners(server.netns, tcp=(PORT,))
    env.policy("clients", {
        "podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}],
    })
    eventually(lambda: "netplex-policy" in table(server), what="the server enforced")
    late = env.pod("late", labels={"role": "client"})
    eventually(lambda: tcp(late.netns, ip(server), PORT), what="a new client pod allowed")
    env.api.set_pod_labels("default", "late", {"role": "gone"})
    eventually(lambda: not tcp(late.netns, ip(server), PORT), what="a relabelled pod denied")
    leaving = env.pod("leaving", labels={"role": "client"})
    eventually(lambda: tcp(leaving.netns, ip(server), PORT), what="another client allowed")
    address = ip(leaving)
    env.delete(leaving)
    eventually(lambda: address not in table(server), what="a deleted peer's address dropped from the set")


def test_daemon_restart_rebuilds_rules_removes_stale_ones_and_keeps_connections(
    env: Env, listeners: Callable[..., Listener]
) -> None:
    server, cache = env.pod("server", labels={"app": "db"}), env.pod("cache", labels={"app": "cache"})
    client, stranger = env.pod("client", labels={"role": "client"}), env.pod("stranger")
    listeners(server.netns, tcp=(PORT,))
    listeners(cache.netns, tcp=(PORT,))
    env.policy("clients", {**ALLOW_CLIENTS, "podSelector": {"matchLabels": {"app": "db"}}})
    env.policy("cache", {"podSelector": {"matchLabels": {"app": "cache"}}, "policyTypes": ["Ingress"]})
    eventually(lambda: not tcp(stranger.netns, ip(cache), PORT), what="the cache enforced")
    talk = Conversation(client.netns, ip(server), PORT)
    try:
        assert env.runner.stop() == 0
        assert not tcp(stranger.netns, ip(server), PORT), "rules stay in force while the daemon is down"
        env.api.delete_policy("default", "cache")
        env.runner.start(env.scene.kubeconfig)
        eventually(lambda: "netplex-policy" not in table(cache), what="stale rules removed after the restart")
        assert tcp(stranger.netns, ip(cache), PORT)
        assert not tcp(stranger.netns, ip(server), PORT), "the server's policy rebuilt"
        assert talk.say("across the restart") == "across the restart", "the connection survives"
        assert tcp(client.netns, ip(server), PORT)
    finally:
        talk.close()


def test_macvlan_pods_are_enforced_too(
    env: Env, uplink: Uplink, listeners: Callable[..., Listener]
) -> None:
    env.scene.add_nad("default", "mv", env.scene.macvlan("mv", uplink.name, "10.96.0.0/24"))
    server = env.pod("server", networks="default/mv", labels={"app": "db"})
    friend = env.pod("friend", networks="default/mv", labels={"role": "client"})
    stranger = env.pod("stranger", networks="default/mv")
    listeners(server.netns, tcp=(PORT,))
    assert tcp(stranger.netns, ip(server), PORT)
    env.policy("mv", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]},
               policy_for="default/mv")
    eventually(lambda: not tcp(stranger.netns, ip(server), PORT), what="the macvlan stranger denied")
    assert tcp(friend.netns, ip(server), PORT)


def test_metrics_count_rules_and_syncs_and_status_names_the_policies(
    env: Env, listeners: Callable[..., Listener]
) -> None:
    server = env.pod("server")
    env.policy("deny", DENY_INGRESS)
    eventually(lambda: "netplex-policy" in table(server), what="the server enforced")
    address = env.runner.daemon_keys["metricsAddress"]

    def metric(name: str) -> float:
        text = netns.call(env.scene.node_ns, lambda: urllib.request.urlopen(f"http://{address}/metrics", timeout=5)
                          .read().decode())
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    eventually(lambda: metric("netplex_policy_rules") > 0, what="rules counted")
    eventually(lambda: metric("netplex_policy_sync_seconds_count") >= 1, what="a sync observed")
    status = subprocess.run(
        [str(Path(sys.executable).with_name("netplex")), "status", "--cni-dir", str(env.scene.cni_dir),
         "--pod", "default/server"], capture_output=True, text=True, check=True,
    ).stdout
    assert re.search(r"net1\s+default/deny", status), status
