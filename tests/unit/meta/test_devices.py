"""meta/devices: device assignment (deterministic, no device twice, errors naming the
resource), deviceID injection into every plugin, device-info files and network-status
entries, and the validate hints. The kubelet is a recording stand-in here; the real gRPC
client meets the pod-resources double in tests/kube/test_podresources.py."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from cni.config import Conflist
from cni.errors import CniError, Code
from meta.devices import assign, devinfo, hints, kubelet
from meta.model import Attachment
from meta.source import Pod

VF = "example.com/vf"
POD = Pod(namespace="default", name="cnf")


@dataclasses.dataclass(frozen=True)
class Settings:
    device_info_dir: str
    pod_resources_socket: str = "/run/kubelet.sock"


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Stands in for the kubelet: the pod got two VFs, listed out of order."""
    calls: list[tuple[str, str, str]] = []

    def pod_devices(socket: str, namespace: str, name: str, *, deadline: float) -> kubelet.Devices:
        calls.append((socket, namespace, name))
        return {VF: ("0000:3b:02.1", "0000:3b:02.0"), "other.com/x": ("x1",)}

    monkeypatch.setattr(kubelet, "pod_devices", pod_devices)
    return calls


def network(*types: str, resource: str = VF, ifname: str = "net1", device_id: str = "") -> Attachment:
    plugins = [{"type": t} for t in types]
    plugins[0]["capabilities"] = {"deviceID": True}
    conflist = Conflist.from_doc({"cniVersion": "1.0.0", "name": "vf", "plugins": plugins})
    return Attachment(network="default/vf", ifname=ifname, conflist=conflist, resource_name=resource,
                      device_id=device_id, origin="nad")


def cluster() -> Attachment:
    conflist = Conflist.from_doc({"cniVersion": "1.0.0", "name": "c", "plugins": [{"type": "bridge"}]})
    return Attachment(network="c", ifname="eth0", conflist=conflist, is_cluster_network=True)


def test_networks_get_the_pods_devices_in_sorted_order_one_each(
    asked: list[tuple[str, str, str]], tmp_path: Path
) -> None:
    plan = [cluster(), network("sriov", "tuning", ifname="net1"), network("sriov", ifname="net2")]

    placed = assign.assign(plan, pod=POD, conf=Settings(str(tmp_path)), container_id="c1", deadline=1e18)

    assert asked == [("/run/kubelet.sock", "default", "cnf")]  # one question for the whole pod
    assert placed[0] == plan[0]
    assert [p.device_id for p in placed[1:]] == ["0000:3b:02.0", "0000:3b:02.1"]
    first = placed[1]
    assert [plugin["deviceID"] for plugin in first.conflist.plugins] == ["0000:3b:02.0"] * 2  # every plugin
    assert first.conflist.plugins[0]["CNIDeviceInfoFile"] == str(tmp_path / "cni" / "default-vf-c1-net1-device.json")
    assert first.capability_args == {"deviceID": "0000:3b:02.0"}


def test_a_device_chosen_in_the_selection_is_kept_and_not_handed_out_again(
    asked: list[tuple[str, str, str]], tmp_path: Path
) -> None:
    plan = [network("sriov", ifname="net1"), network("sriov", ifname="net2", device_id="0000:3b:02.0")]
    placed = assign.assign(plan, pod=POD, conf=Settings(str(tmp_path)), container_id="c1", deadline=1e18)
    assert [p.device_id for p in placed] == ["0000:3b:02.1", "0000:3b:02.0"]


def test_no_resource_name_means_no_kubelet_question(asked: list[tuple[str, str, str]], tmp_path: Path) -> None:
    plan = [cluster()]
    assert assign.assign(plan, pod=POD, conf=Settings(str(tmp_path)), container_id="c1", deadline=0) == plan
    assert asked == []


@pytest.mark.parametrize(
    ("plan", "wanted"),
    [
        ([network("sriov", resource="none.com/x")], "allocated no device of resource 'none.com/x'"),
        ([network("sriov", ifname=f"net{i}") for i in range(3)], "more networks than devices"),
    ],
)
def test_too_few_devices_is_error_7_naming_network_and_resource(
    asked: list[tuple[str, str, str]], tmp_path: Path, plan: list[Attachment], wanted: str
) -> None:
    with pytest.raises(CniError) as caught:
        assign.assign(plan, pod=POD, conf=Settings(str(tmp_path)), container_id="c1", deadline=1e18)
    assert caught.value.code == Code.INVALID_NETWORK_CONFIG
    assert wanted in caught.value.msg and "'default/vf'" in caught.value.msg


def test_a_sandbox_without_a_pod_cannot_use_a_resource(tmp_path: Path) -> None:
    with pytest.raises(CniError, match="no Kubernetes pod"):
        assign.assign([network("sriov")], pod=Pod(namespace="default", name=""), conf=Settings(str(tmp_path)),
                      container_id="c1", deadline=1e18)


def test_device_info_comes_from_the_device_plugins_file_and_goes_with_del(tmp_path: Path) -> None:
    info = {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:3b:02.0", "rdma-device": "mlx5_3"}}
    dp = tmp_path / "dp" / "example.com-vf-0000:3b:02.0-device.json"
    dp.parent.mkdir()
    dp.write_text(json.dumps(info))
    settings = Settings(str(tmp_path))
    placed = [assign.with_device(network("sriov"), "0000:3b:02.0", conf=settings, container_id="c1"),
              assign.with_device(network("sriov", ifname="net2"), "vhost-7", conf=settings, container_id="c1")]

    assert assign.device_infos(placed, conf=settings, container_id="c1") == {"net1": info}  # vhost-7: not PCI
    cached = [type("Cached", (), {"network": p.network, "ifname": p.ifname,
                                  "conflist": p.conflist.to_doc()})() for p in placed]
    assign.forget(cached, conf=settings, container_id="c1")
    assert list((tmp_path / "cni").iterdir()) == []
    assert dp.exists()  # the device plugin's own file stays


def test_unsafe_names_get_no_device_info_file(tmp_path: Path) -> None:
    assert devinfo.dp_path(str(tmp_path), VF, "../../etc/passwd") is None
    assert devinfo.cni_path(str(tmp_path), "default/vf", "c1", "..") is None
    assert devinfo.for_status(None, "0000:3B:02.0") == {
        "type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:3b:02.0"}
    }


@pytest.mark.parametrize(
    ("config", "warned"),
    [
        ({"type": "bridge"}, ["no plugin of this network (bridge) takes a deviceID"]),
        ({"plugins": [{"type": "sriov"}, {"type": "tuning"}]}, []),
        ({"type": "mine", "capabilities": {"deviceID": True}}, []),
    ],
)
def test_validate_warns_when_no_plugin_takes_the_device(config: dict[str, Any], warned: list[str]) -> None:
    found = hints.resource_warnings({"k8s.v1.cni.cncf.io/resourceName": VF}, config)
    assert len(found) == len(warned) and all(w in f for w, f in zip(warned, found, strict=True))
    assert hints.resource_warnings({}, {"type": "bridge"}) == []
    assert "not <domain>/<name>" in hints.resource_warnings({"k8s.v1.cni.cncf.io/resourceName": "vf"},
                                                             {"type": "sriov"})[0]


def test_host_device_is_a_built_in_delegate_under_both_names() -> None:
    from delegates import registry

    assert {"host-device", "netplex-host-device"} <= registry.BUILTIN_TYPES
    assert registry.lookup("host-device") is registry.lookup("netplex-host-device") is not None
