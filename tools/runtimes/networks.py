"""The lanes' networks: NetworkAttachmentDefinitions in a local manifest directory (the
source netplex uses when no kubeconfig is set) and the netplex conflists a runtime loads.

Every network is a built-in bridge with a bridge name unique to the lane (`nprt<tag><n>`)
and a /24 of 198.18.0.0/15 (RFC 2544's benchmarking range), inside the lane's node
namespace. The cluster network is a conflist ending in the `nprt-record` plugin, so tests
see the runtimeConfig netplex hands on. No gateway, masquerading or host sysctl is asked for.

Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.runtimes import plugins

CNI_VERSION = "1.0.0"  # containerd 1.6 and podman 4.3 reject 1.1.0 results
CLUSTER_NAMESPACE = "kube-system"  # netplex's default netplexNamespace
POD_NAMESPACE = "default"
NAD_API_VERSION = "k8s.cni.cncf.io/v1"


@dataclasses.dataclass(frozen=True)
class Network:
    """One NetworkAttachmentDefinition and what it gives a pod."""

    namespace: str
    name: str
    bridge: str
    subnet: str  # "198.18.N.0/24"
    chained_recorder: bool = False

    @property
    def prefix(self) -> str:
        """The subnet's first three octets and a dot: every address it hands out starts so."""
        return self.subnet.rsplit(".", 1)[0] + "."

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True)
class Networks:
    """A lane's networks, written under `directory` (manifests) with IPAM in `ipam_dir`."""

    tag: str
    directory: Path
    ipam_dir: Path
    items: tuple[Network, ...]

    def by_name(self, name: str) -> Network:
        return next(network for network in self.items if network.name == name)

    def reservations(self) -> list[str]:
        """IP addresses host-local still holds (files named like an address)."""
        if not self.ipam_dir.exists():
            return []
        return sorted(
            str(path.relative_to(self.ipam_dir)) for path in self.ipam_dir.rglob("*")
            if path.is_file() and path.name[:1].isdigit() and not path.name.startswith("last_reserved_ip")
        )

    def bridges(self) -> set[str]:
        return {network.bridge for network in self.items}


def plan(tag: str, directory: Path, *, octet: int, cluster: Sequence[str], selectable: Sequence[str]) -> Networks:
    """Networks named `cluster` (in kube-system; the first ends in the recorder) and
    `selectable` (in default), on 198.18.<octet + i>.0/24 and bridges `nprt<tag><i>`."""
    items = []
    for index, name in enumerate([*cluster, *selectable]):
        items.append(Network(
            namespace=CLUSTER_NAMESPACE if index < len(cluster) else POD_NAMESPACE,
            name=name,
            bridge=f"nprt{tag}{index}",
            subnet=f"198.18.{octet + index}.0/24",
            chained_recorder=index == 0,
        ))
    return Networks(tag=tag, directory=directory / "networks", ipam_dir=directory / "ipam", items=tuple(items))


def write_manifests(networks: Networks) -> None:
    """One `nads.yaml` (JSON documents are YAML too) with every network."""
    networks.directory.mkdir(parents=True, exist_ok=True)
    documents = [json.dumps(_nad(network, ipam_dir=networks.ipam_dir)) for network in networks.items]
    (networks.directory / "nads.yaml").write_text("\n---\n".join(documents) + "\n")


def write_pod(networks: Networks, *, name: str, annotations: Mapping[str, str], namespace: str = POD_NAMESPACE) -> Path:
    """A Pod manifest in the local directory (what podman containers are looked up as)."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace,
                                                            "annotations": dict(annotations)}}
    path = networks.directory / f"pod-{namespace}-{name}.yaml"
    path.write_text(json.dumps(pod) + "\n")
    return path


def status_file(networks: Networks, *, pod: str, namespace: str = POD_NAMESPACE) -> Path:
    """Where the local source writes a pod's network-status."""
    return networks.directory / "status" / f"{namespace}_{pod}.json"


def meta_conflist(
    name: str,
    networks: Networks,
    *,
    cluster_network: str,
    cni_dir: Path,
    bin_dir: Path,
    default_networks: Sequence[str] = (),
    capabilities: Mapping[str, bool] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A netplex conflist, as `netplex install` would write it, for a lane's runtime."""
    plugin: dict[str, Any] = {
        "type": "netplex",
        "capabilities": dict(capabilities or {}),
        "clusterNetwork": cluster_network,
        "localNetworks": str(networks.directory),
        "cniDir": str(cni_dir),
        "binDir": str(bin_dir),
        **(extra or {}),
    }
    if default_networks:
        plugin["defaultNetworks"] = list(default_networks)
    return {"cniVersion": CNI_VERSION, "name": name, "plugins": [plugin]}


def write_conflist(conf_dir: Path, conflist: Mapping[str, Any], *, priority: int = 10) -> Path:
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / f"{priority:02d}-{conflist['name']}.conflist"
    path.write_text(json.dumps(conflist, indent=2) + "\n")
    return path


def _nad(network: Network, *, ipam_dir: Path) -> dict[str, Any]:
    bridge: dict[str, Any] = {
        "type": "bridge",
        "bridge": network.bridge,
        "ipam": {"type": "host-local", "subnet": network.subnet, "dataDir": str(ipam_dir)},
    }
    if network.chained_recorder:
        config: dict[str, Any] = {
            "cniVersion": CNI_VERSION,
            "name": network.name,
            "plugins": [
                bridge,
                {"type": plugins.RECORDER, "capabilities": {"portMappings": True, "bandwidth": True, "dns": True}},
            ],
        }
    else:
        config = {"cniVersion": CNI_VERSION, "name": network.name, **bridge}
    return {
        "apiVersion": NAD_API_VERSION,
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": network.name, "namespace": network.namespace},
        "spec": {"config": json.dumps(config)},
    }
