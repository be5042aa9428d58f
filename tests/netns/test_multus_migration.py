"""A live switch from Multus: a pod that Multus attached (the reference plugins run as
libcni runs them, Multus's cache files written exactly as Multus writes them) is DELed by
netplex, in thin and daemon mode. The kernel, the IPAM store and both caches end clean."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.kube.runners import (
    ThinRunner,
    runner_fixture,  # noqa: F401 - the shared `runner` fixture
)
from tests.netns import multus_fixtures as mf
from tests.netns.conftest import Uplink, ip_json

pytestmark = pytest.mark.netns


def _links(ns: str) -> dict[str, str]:
    """ifname -> kind, from the kernel."""
    return {link["ifname"]: link.get("linkinfo", {}).get("info_kind", "")
            for link in ip_json("-d", "link", "show", ns=ns)}


def _reserved(data_dir: Path) -> list[str]:
    """host-local's reservations: one file per IP under <dataDir>/<network>/."""
    if not data_dir.exists():
        return []
    return sorted(str(path.relative_to(data_dir)) for path in data_dir.rglob("*")
                  if path.is_file() and not path.name.startswith(("last_reserved_ip", "lock")))


@pytest.fixture
def multus_pod(tmp_path: Path, host_ns: str, container_ns: str, uplink: Uplink) -> dict[str, Any]:
    """A pod attached by Multus: eth0 (bridge), net1 (macvlan conf), blue0 (a conflist)."""
    tag = uuid.uuid4().hex[:6]
    data = tmp_path / "ipam"
    container_id = f"multus{uuid.uuid4().hex}"
    cni_args = [["IgnoreUnknown", "true"], ["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", "pod-m"],
                ["K8S_POD_INFRA_CONTAINER_ID", container_id], ["K8S_POD_UID", "uid-m"]]
    cluster = {"cniVersion": "1.0.0", "name": f"mcl{tag}", "type": "bridge", "bridge": f"mcl{tag}",
               "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.91.0.0/24", "dataDir": str(data)}}
    red = {"cniVersion": "0.4.0", "name": f"red{tag}", "type": "macvlan", "master": uplink.name, "mode": "bridge",
           "ipam": {"type": "host-local", "subnet": "10.92.0.0/24", "dataDir": str(data)}}
    blue = {"cniVersion": "1.0.0", "name": f"blue{tag}", "plugins": [
        {"type": "bridge", "bridge": f"mbl{tag}",
         "ipam": {"type": "host-local", "subnet": "10.93.0.0/24", "dataDir": str(data)}},
        {"type": "tuning", "sysctl": {"net.ipv4.conf.blue0.arp_accept": "1"}}]}
    plan = [(cluster, "eth0", "", f"{cluster['name']}"), (red, "net1", "", f"default/{red['name']}"),
            (blue, "blue0", "blue0", f"default/{blue['name']}")]
    delegates, results = [], []
    for config, ifname, requested, name in plan:
        result = mf.run_reference(host_ns, config, command="ADD", container_id=container_id, netns=container_ns,
                                  ifname=ifname, cni_args=cni_args)
        assert result is not None
        delegates.append(mf.delegate_record(config, name=name, ifname_request=requested))
        results.append(mf.libcni_result(config, result, container_id=container_id, ifname=ifname,
                                        netns=container_ns, cni_args=cni_args))
    multus_dir = tmp_path / "multus"
    mf.write_multus_cache(multus_dir, container_id, delegates, results)
    local = tmp_path / "networks"
    local.mkdir()
    conf = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "clusterNetwork": cluster["name"],
            "cniDir": str(tmp_path / "netplex"), "multusCacheDir": str(multus_dir), "binDir": mf.REFERENCE_BIN,
            "localNetworks": str(local)}
    return {"conf": conf, "container_id": container_id, "data": data, "multus_dir": multus_dir,
            "cni_args": ";".join(f"{k}={v}" for k, v in cni_args)}


def test_multus_attached_pod_is_deleted_by_netplex_and_nothing_is_left(
    runner: ThinRunner, multus_pod: dict[str, Any], container_ns: str, host_ns: str, uplink: Uplink
) -> None:
    before = _links(container_ns)
    assert {"eth0", "net1", "blue0"} <= set(before), before
    assert len(_reserved(multus_pod["data"])) == 3
    host_veths = [name for name, kind in _links(host_ns).items() if kind == "veth" and name != uplink.name]
    assert len(host_veths) == 2, _links(host_ns)

    rc, doc = runner.delete(multus_pod["conf"], container_id=multus_pod["container_id"], netns=container_ns,
                            cni_args=multus_pod["cni_args"])

    assert rc == 0, (doc, runner.last_stderr)
    assert set(_links(container_ns)) == {"lo"}
    assert [name for name, kind in _links(host_ns).items() if kind == "veth" and name != uplink.name] == []
    assert _reserved(multus_pod["data"]) == []
    multus_dir: Path = multus_pod["multus_dir"]
    assert not (multus_dir / multus_pod["container_id"]).exists()
    assert os.listdir(multus_dir / "results") == []
    netplex_cache = Path(multus_pod["conf"]["cniDir"]) / "cache"
    assert not netplex_cache.exists() or os.listdir(netplex_cache) == []
    rc, doc = runner.delete(multus_pod["conf"], container_id=multus_pod["container_id"], netns=container_ns,
                            cni_args=multus_pod["cni_args"])
    assert rc == 0, doc


def test_check_of_a_multus_attached_pod_reads_multus_cache_and_changes_nothing(
    multus_pod: dict[str, Any], container_ns: str, host_ns: str, tmp_path: Path
) -> None:
    thin = ThinRunner(node_ns=host_ns, workdir=tmp_path)
    rc, doc = thin.check(multus_pod["conf"], container_id=multus_pod["container_id"], netns=container_ns,
                         cni_args=multus_pod["cni_args"])
    assert rc == 0, (doc, thin.last_stderr)
    assert (multus_pod["multus_dir"] / multus_pod["container_id"]).exists()
    assert len(_reserved(multus_pod["data"])) == 3
    rc, doc = thin.delete(multus_pod["conf"], container_id=multus_pod["container_id"], netns=container_ns)
    assert rc == 0, doc
    rc, doc = thin.check(multus_pod["conf"], container_id=multus_pod["container_id"], netns=container_ns)
    assert rc == 1 and doc["code"] == 3, doc  # nothing recorded any more: unknown container


def test_gc_deletes_a_multus_record_the_runtime_no_longer_lists(
    multus_pod: dict[str, Any], container_ns: str, host_ns: str, tmp_path: Path
) -> None:
    thin = ThinRunner(node_ns=host_ns, workdir=tmp_path)
    conf = {**multus_pod["conf"], "cniVersion": "1.1.0", "cni.dev/valid-attachments": []}
    rc, doc = thin.gc(conf)
    assert rc == 0, (doc, thin.last_stderr)
    assert set(_links(container_ns)) == {"lo"}
    assert _reserved(multus_pod["data"]) == []
    assert not (multus_pod["multus_dir"] / multus_pod["container_id"]).exists()
    assert doc is None  # GC prints nothing on success
