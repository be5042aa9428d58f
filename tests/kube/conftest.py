"""Fixtures of the kube lane: a running API double, a kubeconfig pointing at it, and a
meta.k8s.Kube client built from that kubeconfig (the way the CNI path builds one).

For the meta-plugin flows (tests marked `netns`): the netns lane's namespace fixtures
(`make_ns`, `host_ns`, `uplink`), a guard that the real host's links, addresses and
routes are unchanged after each such test, and `runner`, which parametrises a test over
every mode of calling netplex (tests/kube/runners.py), each in its own node namespace."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from delegates.netlink import netns
from meta import k8s
from meta.model import NETWORK_STATUS_ANNOTATION
from tests.kube import runners
from tests.kube.apidouble import ApiDouble
from tests.kube.runners import runner_fixture  # noqa: F401 - the shared `runner` fixture
from tests.netns import conftest as netns_fixtures
from tests.netns.conftest import ip_json

# The netns lane's fixtures, for the kube tests that make namespaces too.
make_ns = netns_fixtures.make_ns
host_ns = netns_fixtures.host_ns
uplink = netns_fixtures.uplink

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: double
  cluster:
    server: {server}
contexts:
- name: double
  context:
    cluster: double
    user: netplex
current-context: double
users:
- name: netplex
  user: {{}}
"""


@pytest.fixture
def api_double() -> Iterator[ApiDouble]:
    """A running API double; stopped and checked for internal errors afterwards."""
    double = ApiDouble()
    double.start()
    try:
        yield double
    finally:
        double.close()
    assert not double.errors, f"the API double failed inside: {double.errors!r}"


@pytest.fixture
def kubeconfig(tmp_path: Path, api_double: ApiDouble) -> str:
    """A kubeconfig file for the double: plain HTTP, no credentials."""
    path = tmp_path / "netplex.kubeconfig"
    path.write_text(KUBECONFIG.format(server=api_double.url))
    return str(path)


@pytest.fixture
def kube(kubeconfig: str) -> Iterator[k8s.Kube]:
    client = k8s.Kube.from_kubeconfig(kubeconfig, timeout=2.0)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def host_unchanged_for_netns(request: pytest.FixtureRequest) -> Iterator[None]:
    """For tests marked `netns`: fail if the real host's links, addresses or routes changed."""
    if request.node.get_closest_marker("netns") is None:
        yield
        return
    before = netns_fixtures._host_snapshot()
    yield
    after = netns_fixtures._host_snapshot()
    changes = [
        f"host {kind}: gone {sorted(rows - after[kind], key=repr)}, new {sorted(after[kind] - rows, key=repr)}"
        for kind, rows in before.items()
        if rows != after[kind]
    ]
    assert not changes, "the test touched the host namespace:\n" + "\n".join(changes)


@pytest.fixture
def thin_runner(host_ns: str, tmp_path: Path) -> Iterator[runners.Runner]:
    """Thin mode only, for what only thin mode promises (the exact API requests of an ADD)."""
    workdir = tmp_path / "runner-thin"
    workdir.mkdir()
    made = runners.ThinRunner(node_ns=host_ns, workdir=workdir)
    try:
        yield made
    finally:
        made.close()


# -- the meta-plugin's scene: an API double, a node, pods, and the kernel's view --------

CLUSTER_SUBNET = "10.91.0.0/24"


@dataclasses.dataclass(frozen=True)
class ScenePod:
    """One pod: its object in the API double (unless `in_api` was false) and its sandbox."""

    namespace: str
    name: str
    uid: str
    netns: str  # the sandbox's path, CNI_NETNS
    container_id: str

    @property
    def cni_args(self) -> str:
        """CNI_ARGS as containerd passes them (all four K8S_POD_* keys)."""
        return (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={self.namespace};K8S_POD_NAME={self.name};"
            f"K8S_POD_INFRA_CONTAINER_ID={self.container_id};K8S_POD_UID={self.uid}"
        )

    def links(self) -> dict[str, dict[str, Any]]:
        """The sandbox's links but `lo`, by name, as the kernel reports them."""
        return {link["ifname"]: link for link in ip_json("-d", "link", "show", ns=self.netns) if link["ifname"] != "lo"}

    def addresses(self) -> dict[str, list[str]]:
        """Global addresses per link (`10.91.0.2/24`), as the kernel reports them."""
        found: dict[str, list[str]] = {}
        for link in ip_json("addr", "show", ns=self.netns):
            for info in link.get("addr_info", []):
                if info.get("scope") == "global":
                    found.setdefault(link["ifname"], []).append(f"{info['local']}/{info['prefixlen']}")
        return found

    def default_routes(self, family: str = "-4") -> list[tuple[str | None, str]]:
        """(gateway, dev) of each default route in the sandbox's main table."""
        return [
            (route.get("gateway"), route["dev"])
            for route in ip_json(family, "route", "show", "default", ns=self.netns)
        ]


@dataclasses.dataclass
class MetaScene:
    """What a meta-plugin test needs around netplex: the API double (with the cluster
    network `kube-system/cluster` seeded), a node namespace, scratch dirs for netplex's
    cache (`cni_dir`), host-local (`data_dir`), confDir and binDir, and pods."""

    api: ApiDouble
    kubeconfig: str
    node_ns: str
    root: Path
    new_ns: Callable[..., str]

    @property
    def cni_dir(self) -> Path:
        return self.root / "cni"

    @property
    def data_dir(self) -> Path:
        return self.root / "ipam"

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def start_api(self) -> None:
        """(Re)start the API double listening on the node namespace's loopback (same port)."""
        netns.call(self.node_ns, self.api.start)

    def stop_api(self) -> None:
        """Stop the API double: netplex's connections are refused until `start_api()`."""
        self.api.stop()

    def conf(self, **keys: Any) -> dict[str, Any]:
        """The meta config as `netplex install` writes it, with `keys` on top."""
        doc: dict[str, Any] = {
            "cniVersion": "1.0.0",
            "name": "netplex",
            "type": "netplex",
            "kubeconfig": self.kubeconfig,
            "clusterNetwork": "cluster",
            "cniDir": str(self.cni_dir),
            "confDir": str(self.conf_dir),
            "binDir": str(self.bin_dir),
            "delegateTimeout": 20.0,
        }
        return doc | keys

    def bridge(
        self, name: str, bridge: str, subnet: str, *, default_route: bool = False, **keys: Any
    ) -> dict[str, Any]:
        """A bridge network with host-local IPAM in this scene's data dir."""
        ipam: dict[str, Any] = {"type": "host-local", "subnet": subnet, "dataDir": str(self.data_dir)}
        if default_route:
            ipam["routes"] = [{"dst": "0.0.0.0/0"}]
        return {"cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge, "ipam": ipam} | keys

    def macvlan(self, name: str, master: str, subnet: str, **keys: Any) -> dict[str, Any]:
        ipam = {"type": "host-local", "subnet": subnet, "dataDir": str(self.data_dir)}
        return {"cniVersion": "1.0.0", "name": name, "type": "macvlan", "master": master, "ipam": ipam} | keys

    @staticmethod
    def conflist(name: str, *plugins: dict[str, Any]) -> dict[str, Any]:
        """A conflist of `plugins` (confs as `bridge()` makes them: name and version go)."""
        entries = [{key: value for key, value in p.items() if key not in ("name", "cniVersion")} for p in plugins]
        return {"cniVersion": "1.0.0", "name": name, "plugins": entries}

    def add_nad(self, namespace: str, name: str, config: dict[str, Any] | str = "", **kwargs: Any) -> None:
        text = config if isinstance(config, str) else json.dumps(config)
        self.api.add_nad(namespace, name, config=text, **kwargs)

    def pod(
        self,
        name: str,
        *,
        namespace: str = "default",
        annotations: dict[str, str] | None = None,
        in_api: bool = True,
    ) -> ScenePod:
        """A pod: a sandbox namespace, a container ID and (unless not `in_api`) its object."""
        uid = str(uuid.uuid4())
        if in_api:
            self.api.add_pod(namespace, name, annotations=annotations, uid=uid)
        return ScenePod(
            namespace=namespace, name=name, uid=uid, netns=self.new_ns("npp-", lo_up=True),
            container_id=f"c{uuid.uuid4().hex}",
        )

    def reserved_ips(self, network: str) -> list[str]:
        """The addresses host-local holds for `network`, from its files."""
        directory = self.data_dir / network
        if not directory.is_dir():
            return []
        return sorted(path.name for path in directory.iterdir() if _is_ip(path.name))

    def cache_files(self) -> list[str]:
        directory = self.cni_dir / "cache"
        return sorted(path.name for path in directory.iterdir()) if directory.is_dir() else []

    def node_links(self) -> dict[str, dict[str, Any]]:
        """The node namespace's links, by name."""
        return {link["ifname"]: link for link in ip_json("-d", "link", "show", ns=self.node_ns)}

    def node_veths(self) -> list[str]:
        """Host-side veths in the node: one per bridge attachment still there (the
        `uplink` fixture's own veth does not count)."""
        return sorted(
            name for name, link in self.node_links().items()
            if link.get("linkinfo", {}).get("info_kind") == "veth" and not name.startswith("upl-")
        )

    def all_reserved_ips(self) -> dict[str, list[str]]:
        """Every network's host-local reservations (networks holding none left out)."""
        if not self.data_dir.is_dir():
            return {}
        found = {path.name: self.reserved_ips(path.name) for path in self.data_dir.iterdir() if path.is_dir()}
        return {network: ips for network, ips in found.items() if ips}

    def leftovers(self, *pods: ScenePod) -> list[str]:
        """What an attachment left behind: pod links, node veths, reserved IPs, cache
        files (empty when nothing is left; bridges stay, as the reference leaves them)."""
        found = [f"{pod.name} has {sorted(pod.links())}" for pod in pods if pod.links()]
        if self.node_veths():
            found.append(f"node veths {self.node_veths()}")
        if self.all_reserved_ips():
            found.append(f"reserved IPs {self.all_reserved_ips()}")
        if self.cache_files():
            found.append(f"cache files {self.cache_files()}")
        return found

    def fake_plugin(self, plugin_type: str, *, fail_on: str = "") -> Path:
        """An exec'd CNI plugin in binDir that logs every call to `<type>.log` (one JSON
        line: command, ifname, whether a prevResult came, runtimeConfig) and passes the
        prevResult through on ADD, as a chained plugin (tuning, portmap) does. It fails
        `fail_on` (a command) with error 7."""
        path = self.bin_dir / plugin_type
        log = self.root / f"{plugin_type}.log"
        path.write_text(
            f"#!{sys.executable} -IS\n"
            "import json, os, sys\n"
            "conf = json.load(sys.stdin)\n"
            "command = os.environ['CNI_COMMAND']\n"
            f"with open({str(log)!r}, 'a') as log:\n"
            "    log.write(json.dumps({'command': command, 'ifname': os.environ.get('CNI_IFNAME'),"
            " 'prevResult': 'prevResult' in conf, 'runtimeConfig': conf.get('runtimeConfig')}) + '\\n')\n"
            f"if command == {fail_on!r}:\n"
            "    print(json.dumps({'cniVersion': conf['cniVersion'], 'code': 7, 'msg': 'fake failure'}))\n"
            "    sys.exit(1)\n"
            "if command == 'ADD':\n"
            "    print(json.dumps(dict(conf.get('prevResult') or {}, cniVersion=conf['cniVersion'])))\n"
        )
        path.chmod(0o755)
        return path

    def plugin_calls(self, plugin_type: str) -> list[dict[str, Any]]:
        log = self.root / f"{plugin_type}.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def network_status(self, pod: ScenePod) -> list[dict[str, Any]]:
        """The pod's network-status annotation as the API double holds it."""
        annotations = self.api.pod(pod.namespace, pod.name)["metadata"].get("annotations", {})
        text = annotations.get(NETWORK_STATUS_ANNOTATION)
        assert text is not None, f"no network-status on {pod.namespace}/{pod.name}: {annotations}"
        parsed: list[dict[str, Any]] = json.loads(text)
        return parsed


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@pytest.fixture
def scene(
    api_double: ApiDouble, kubeconfig: str, host_ns: str, make_ns: Callable[..., str], tmp_path: Path
) -> MetaScene:
    """A MetaScene with the cluster network `kube-system/cluster` (bridge `npcl0`, with a
    default route) as a NetworkAttachmentDefinition."""
    made = MetaScene(api=api_double, kubeconfig=kubeconfig, node_ns=host_ns, root=tmp_path / "scene", new_ns=make_ns)
    made.stop_api()
    made.start_api()  # listening inside the node namespace, where netplex runs
    for directory in (made.cni_dir, made.data_dir, made.conf_dir, made.bin_dir):
        directory.mkdir(parents=True)
    made.add_nad("kube-system", "cluster", made.bridge("cluster", "npcl0", CLUSTER_SUBNET, default_route=True))
    return made
