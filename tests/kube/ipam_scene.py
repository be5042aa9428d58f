"""What the netplex-ipam tests share: the API double with the IPAM's resources registered
(pools, blocks, IPAMClaims, nodes), node objects, and calls of the plugin in-process as
a given node. Import the fixtures into a test module:

    from tests.kube.ipam_scene import IpamScene, ipam_api_fixture  # noqa: F401"""

from __future__ import annotations

import collections
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni import skel
from cni.errors import CniError
from delegates.ipam.cluster import plugin
from tests.kube.apidouble import ApiDouble
from tests.kube.apistore import Resource
from tests.kube.conftest import KUBECONFIG


class IpamScene:
    """An API double serving the IPAM's kinds, a kubeconfig for it and a data dir."""

    def __init__(self, api: ApiDouble, root: Path) -> None:
        self.api = api
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.data_dir = root / "ipam"
        self.kubeconfig = str(root / "kubeconfig")
        Path(self.kubeconfig).write_text(KUBECONFIG.format(server=api.url))
        self.pools = api.register_resource("ipam.netplex.io", "v1alpha1", "ippools", namespaced=False, kind="IPPool")
        self.blocks = api.register_resource(
            "ipam.netplex.io", "v1alpha1", "ipblocks", namespaced=False, kind="IPBlock"
        )
        self.claims = api.register_resource("k8s.cni.cncf.io", "v1alpha1", "ipamclaims", kind="IPAMClaim")
        self.nodes = api.register_resource("", "v1", "nodes", namespaced=False, kind="Node")

    def add_node(self, name: str) -> None:
        self.api.create_object(self.nodes, {"metadata": {"name": name}})

    def add_claim(self, namespace: str, name: str, *, network: str = "tenant", interface: str = "net1") -> None:
        self.api.create_object(self.claims, {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"network": network, "interface": interface},
        })

    def claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.api.get_object(self.claims, name, namespace)

    def ipam(self, **keys: Any) -> dict[str, Any]:
        """The `ipam` section: a /24 by default, this scene's data dir and kubeconfig."""
        section: dict[str, Any] = {
            "type": "netplex-ipam", "range": "10.77.0.0/24", "gateway": "10.77.0.1",
            "dataDir": str(self.data_dir), "kubernetes": {"kubeconfig": self.kubeconfig},
        }
        return section | keys

    def conf(self, *, name: str = "tenant", claim: str = "", **ipam: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {"cniVersion": "1.1.0", "name": name, "type": "macvlan", "ipam": self.ipam(**ipam)}
        if claim:
            doc["args"] = {"cni": {"ipam-claim-reference": claim}}
        return doc

    def call(
        self, command: str, conf: dict[str, Any], *, container_id: str = "", ifname: str = "net1",
        pod: str = "", namespace: str = "default", uid: str = "",
    ) -> dict[str, Any] | None:
        """One CNI call of netplex-ipam in-process (as the daemon runs it)."""
        cni_args = f"K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={pod};K8S_POD_UID={uid}" if pod else ""
        args = skel.CmdArgs(
            command=command, container_id=container_id, netns="/var/run/netns/x" if command == "ADD" else "",
            ifname=ifname if container_id else "", args=cni_args, path=("/opt/cni/bin",),
            stdin=json.dumps(conf).encode(),
        )
        return skel.dispatch(plugin.PLUGIN, args)

    def add(self, conf: dict[str, Any], **kwargs: Any) -> str:
        """ADD; the address (without prefix) of the first range."""
        answer = self.call("ADD", conf, **kwargs)
        assert answer is not None
        return str(answer["ips"][0]["address"]).split("/")[0]

    def records(self) -> dict[str, dict[str, Any]]:
        """Every node's records: address -> the record, across all nodes and pools."""
        found: dict[str, dict[str, Any]] = {}
        if not self.data_dir.is_dir():
            return found
        for path in self.data_dir.glob("*/*/*"):
            if path.name[0].isdigit() or ":" in path.name:
                assert path.name not in found, f"{path.name} recorded twice: {found[path.name]} and {path}"
                found[path.name] = json.loads(path.read_text())
        return found

    def block_owners(self) -> dict[str, str]:
        return {obj["spec"]["cidr"]: obj["spec"]["node"] for obj in self.api.objects(self.blocks)}

    def writes(self) -> collections.Counter[str]:
        return collections.Counter(r.method for r in self.api.requests if r.method != "GET")


def new_container() -> str:
    return f"c{uuid.uuid4().hex}"


def add_retrying(scene: IpamScene, conf: dict[str, Any], attempts: int = 40, **kwargs: Any) -> str:
    """ADD as kubelet does: error 11 (an API hiccup) means DEL and ADD again."""
    last: CniError | None = None
    for _ in range(attempts):
        try:
            return scene.add(conf, **kwargs)
        except CniError as err:
            if err.code != 11:
                raise
            last = err
            scene.call("DEL", conf, container_id=kwargs["container_id"], ifname=kwargs.get("ifname", "net1"))
    raise AssertionError(f"ADD kept failing: {last!r}")


@pytest.fixture(name="ipam_api")
def ipam_api_fixture(api_double: ApiDouble, tmp_path: Path) -> Iterator[IpamScene]:
    scene = IpamScene(api_double, tmp_path)
    for name in ("node-1", "node-2", "node-3", "node-4", "node-5"):
        scene.add_node(name)
    yield scene


__all__ = ["IpamScene", "Resource", "add_retrying", "ipam_api_fixture", "new_container"]
