"""Device-plugin networks end to end, in thin and daemon mode: a NAD with
`k8s.v1.cni.cncf.io/resourceName`, the pod-resources gRPC double (tests/kube/
podresources_double.py) saying which devices the kubelet gave the pod, and a recording
stand-in for an exec'd device delegate (SR-IOV CNI) that logs exactly what it was handed.

The judges: what the stand-in received (deviceID in every plugin, runtimeConfig.deviceID
where declared, CNIDeviceInfoFile), the pod's network-status (`device-info`), the
device-info files on disk, and the scene's leftovers after DEL or a failed ADD."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube.conftest import MetaScene, ScenePod
from tests.kube.podresources_double import PodResourcesDouble
from tests.kube.runners import Runner

pytestmark = pytest.mark.netns

NETWORKS = "k8s.v1.cni.cncf.io/networks"
RESOURCE = "k8s.v1.cni.cncf.io/resourceName"
VF = "example.com/sriov_vf"
DEVICES = ["0000:3b:02.1", "0000:3b:02.0"]  # as the kubelet lists them: not sorted


@pytest.fixture
def kubelet(scene: MetaScene) -> Iterator[PodResourcesDouble]:
    with PodResourcesDouble(scene.root / "kubelet.sock") as double:
        yield double


@pytest.fixture
def devnets(scene: MetaScene) -> MetaScene:
    """The scene with `default/vf`: a conflist of the stand-in `sriov` (declaring the
    deviceID capability) and a chained `tuning` stand-in, on resource VF."""
    recording_plugin(scene, "sriov")
    scene.fake_plugin("tuning")
    conflist = {"cniVersion": "1.0.0", "name": "vf", "plugins": [
        {"type": "sriov", "vlan": 100, "capabilities": {"deviceID": True}},
        {"type": "tuning"},
    ]}
    scene.add_nad("default", "vf", conflist, annotations={RESOURCE: VF})
    return scene


def recording_plugin(scene: MetaScene, plugin_type: str) -> None:
    """An exec'd plugin that logs its whole config and CNI_IFNAME, answers ADD with one
    sandbox interface, and (as SR-IOV CNI does) adds what it knows to the device-info file
    it was handed."""
    path = scene.bin_dir / plugin_type
    log = scene.root / f"{plugin_type}.stdin.log"
    path.write_text(
        f"#!{sys.executable} -IS\n"
        "import json, os, sys\n"
        "conf = json.load(sys.stdin)\n"
        "command, ifname = os.environ['CNI_COMMAND'], os.environ['CNI_IFNAME']\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        "    log.write(json.dumps({'command': command, 'ifname': ifname, 'conf': conf}) + '\\n')\n"
        "info = conf.get('CNIDeviceInfoFile')\n"
        "if command == 'ADD' and info and os.path.exists(info):\n"
        "    doc = json.load(open(info))\n"
        "    doc.setdefault('pci', {})['representor-device'] = 'rep-' + ifname\n"
        "    open(info, 'w').write(json.dumps(doc))\n"
        "if command == 'ADD':\n"
        "    print(json.dumps({'cniVersion': conf['cniVersion'], 'interfaces': [\n"
        "        {'name': ifname, 'mac': '02:00:00:00:00:0' + ifname[-1], 'sandbox': os.environ['CNI_NETNS']}]}))\n"
    )
    path.chmod(0o755)


def handed(scene: MetaScene, plugin_type: str, command: str) -> dict[str, dict[str, Any]]:
    """The configs `plugin_type` got for `command`, by CNI_IFNAME."""
    log = scene.root / f"{plugin_type}.stdin.log"
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return {line["ifname"]: line["conf"] for line in lines if line["command"] == command}


def write_dp_info(root: Path, resource: str, device: str) -> dict[str, Any]:
    """The file a device plugin writes for a device it hands out (NPWG device-info v1.1)."""
    info = {"type": "pci", "version": "1.1.0", "pci": {"pci-address": device, "pf-pci-address": "0000:3b:00.0"}}
    path = root / "devinfo" / "dp" / f"{resource.replace('/', '-')}-{device}-device.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    return info


def cni_info_files(scene: MetaScene) -> list[str]:
    directory = scene.root / "devinfo" / "cni"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def conf(scene: MetaScene, kubelet: PodResourcesDouble, **keys: Any) -> dict[str, Any]:
    return scene.conf(podResourcesSocket=kubelet.socket_path, deviceInfoDir=str(scene.root / "devinfo"), **keys)


def add(runner: Runner, config: dict[str, Any], pod: ScenePod) -> Any:
    return runner.add(config, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)


def delete(runner: Runner, config: dict[str, Any], pod: ScenePod) -> Any:
    return runner.delete(config, container_id=pod.container_id, netns=pod.netns, cni_args=pod.cni_args)


def test_each_network_gets_its_own_device_handed_and_reported(
    runner: Runner, devnets: MetaScene, kubelet: PodResourcesDouble
) -> None:
    pod = devnets.pod("cnf", annotations={NETWORKS: "vf@data0, vf@data1"})
    kubelet.allocate("default", "cnf", VF, DEVICES)
    dp_info = write_dp_info(devnets.root, VF, "0000:3b:02.0")
    config = conf(devnets, kubelet)

    answer = add(runner, config, pod)

    assert answer.rc == 0, (answer.doc, runner.last_stderr[-3000:])
    sriov = handed(devnets, "sriov", "ADD")
    assert sriov["data0"]["deviceID"] == "0000:3b:02.0"  # sorted, in plan order
    assert sriov["data1"]["deviceID"] == "0000:3b:02.1"
    assert sriov["data0"]["runtimeConfig"] == {"deviceID": "0000:3b:02.0"}  # the declared capability
    assert sriov["data0"]["vlan"] == 100  # the rest of the NAD's config as written
    info_file = sriov["data0"]["CNIDeviceInfoFile"]
    assert info_file == str(devnets.root / "devinfo" / "cni" / f"default-vf-{pod.container_id}-data0-device.json")
    tuning = [call for call in devnets.plugin_calls("tuning") if call["command"] == "ADD"]
    assert {call["ifname"] for call in tuning} == {"data0", "data1"}
    assert all(call["runtimeConfig"] is None for call in tuning)  # no deviceID capability declared

    status = {element["interface"]: element for element in devnets.network_status(pod)}
    assert status["data0"]["device-info"] == {
        **dp_info, "pci": {**dp_info["pci"], "representor-device": "rep-data0"}  # the delegate's addition kept
    }
    assert status["data1"]["device-info"] == {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:3b:02.1"}}
    assert "device-info" not in status["eth0"]
    assert len(cni_info_files(devnets)) == 1

    answer = delete(runner, config, pod)
    assert answer.rc == 0, answer.doc
    assert handed(devnets, "sriov", "DEL")["data1"]["deviceID"] == "0000:3b:02.1"  # DEL from the cache
    assert cni_info_files(devnets) == []
    assert devnets.leftovers(pod) == []


def test_the_kubelet_without_get_answers_through_list(runner: Runner, devnets: MetaScene, tmp_path: Path) -> None:
    with PodResourcesDouble(tmp_path / "old-kubelet.sock", get_supported=False) as old:
        old.allocate("default", "cnf", VF, ["0000:3b:02.4"])
        old.allocate("default", "other", VF, ["0000:3b:02.5"])
        pod = devnets.pod("cnf", annotations={NETWORKS: "vf"})
        config = conf(devnets, old)
        answer = add(runner, config, pod)
        assert answer.rc == 0, answer.doc
        assert handed(devnets, "sriov", "ADD")["net1"]["deviceID"] == "0000:3b:02.4"
        assert old.calls[:2] == ["Get", "List"]
        assert delete(runner, config, pod).rc == 0
    assert devnets.leftovers(pod) == []


@pytest.mark.parametrize(
    "case",
    [
        ("vf", [], "allocated no device of resource 'example.com/sriov_vf' to pod default/cnf"),
        ("vf@d0, vf@d1", ["0000:3b:02.0"], "more networks than devices"),
    ],
    ids=["no-device-for-the-pod", "more-networks-than-devices"],
)
def test_a_pod_without_enough_devices_fails_naming_the_resource_and_leaves_nothing(
    runner: Runner, devnets: MetaScene, kubelet: PodResourcesDouble, case: tuple[str, list[str], str]
) -> None:
    annotation, allocated, wanted = case
    pod = devnets.pod("cnf", annotations={NETWORKS: annotation})
    if allocated:
        kubelet.allocate("default", "cnf", VF, allocated)
    answer = add(runner, conf(devnets, kubelet), pod)
    assert answer.rc != 0 and answer.code == 7, answer.doc
    assert wanted in answer.msg and "default/vf" in answer.msg
    assert handed(devnets, "sriov", "ADD") == {}
    assert devnets.leftovers(pod) == [] and cni_info_files(devnets) == []


def test_a_missing_kubelet_socket_is_error_11_naming_it(runner: Runner, devnets: MetaScene, tmp_path: Path) -> None:
    pod = devnets.pod("cnf", annotations={NETWORKS: "vf"})
    missing = str(tmp_path / "no-kubelet.sock")
    answer = add(runner, devnets.conf(podResourcesSocket=missing, deviceInfoDir=str(tmp_path / "di")), pod)
    assert answer.rc != 0 and answer.code == 11, answer.doc
    assert missing in answer.msg
    assert devnets.leftovers(pod) == []


def test_a_slow_kubelet_is_cut_at_the_add_deadline_with_error_11(
    runner: Runner, devnets: MetaScene, tmp_path: Path
) -> None:
    with PodResourcesDouble(tmp_path / "slow.sock", delay=8.0) as slow:
        pod = devnets.pod("cnf", annotations={NETWORKS: "vf"})
        slow.allocate("default", "cnf", VF, ["0000:3b:02.0"])
        answer = add(runner, conf(devnets, slow, addTimeout=5.0), pod)
        assert answer.rc != 0 and answer.code == 11, answer.doc
        assert slow.socket_path in answer.msg
        # the call was cut at the deadline, or the deadline had passed before it could start
        assert "did not answer in time" in answer.msg or "deadline passed" in answer.msg
    assert devnets.leftovers(pod) == []
