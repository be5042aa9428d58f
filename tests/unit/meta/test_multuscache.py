"""Reading Multus's cache (meta/multuscache.py) from files in Multus's exact format
(tests/netns/multus_fixtures.py builds them as Go's encoder writes them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni.errors import CniError, Code
from meta import multuscache
from tests.netns import multus_fixtures as mf

CID = "0123456789abcdef"
CLUSTER = {"cniVersion": "1.0.0", "name": "cbr0", "type": "bridge", "ipam": {"type": "host-local"}}
RED = {"cniVersion": "0.4.0", "name": "red", "type": "macvlan", "master": "eth1"}
BLUE = {"cniVersion": "1.0.0", "name": "blue", "plugins": [{"type": "bridge"}, {"type": "tuning"}]}
ARGS = [["IgnoreUnknown", "true"], ["K8S_POD_NAME", "web"]]


def _layout(tmp_path: Path) -> Path:
    delegates = [mf.delegate_record(CLUSTER, name="cbr0"), mf.delegate_record(RED, name="default/red"),
                 mf.delegate_record(BLUE, name="default/blue", ifname_request="blue0")]
    results = [mf.libcni_result(config, {"cniVersion": config["cniVersion"], "ips": [{"address": f"10.0.{i}.5/24"}]},
                                container_id=CID, ifname=ifname, netns="/run/netns/pod", cni_args=ARGS)
               for i, (config, ifname) in enumerate([(CLUSTER, "eth0"), (RED, "net1"), (BLUE, "blue0")])]
    mf.write_multus_cache(tmp_path, CID, delegates, results)
    return tmp_path / CID


def test_a_multus_record_is_adopted_with_multus_ifnames_and_libcni_results(tmp_path: Path) -> None:
    record = _layout(tmp_path)
    assert multuscache.record_path([str(tmp_path / "none"), str(tmp_path)], CID) == str(record)
    entry = multuscache.adopt(str(record), container_id=CID, ifname="eth0", netns="", cni_version="1.0.0",
                              result_dirs=[str(tmp_path)], default_cni_args="K8S_POD_NAME=x")
    assert [(a.network, a.ifname, a.is_cluster_network) for a in entry.attachments] == [
        ("cbr0", "eth0", True), ("default/red", "net1", False), ("default/blue", "blue0", False)]
    assert [a.result["ips"][0]["address"] for a in entry.attachments if a.result] == [
        "10.0.0.5/24", "10.0.1.5/24", "10.0.2.5/24"]
    assert all(a.state == "added" and a.prefer_binaries for a in entry.attachments)
    assert entry.attachments[1].cni_args == "IgnoreUnknown=true;K8S_POD_NAME=web"
    assert [p["type"] for p in entry.attachments[2].conflist["plugins"]] == ["bridge", "tuning"]
    assert entry.netns == "/run/netns/pod"  # from libcni's record, for GC
    assert multuscache.list_records(str(tmp_path)) == [CID]


@pytest.mark.parametrize("content", [b"{}", b"[]", b"not json", json.dumps([{"Bytes": "!!notbase64"}]).encode()])
def test_a_file_not_in_multus_format_is_error_6_naming_it(tmp_path: Path, content: bytes) -> None:
    (tmp_path / CID).write_bytes(content)
    with pytest.raises(CniError) as caught:
        multuscache.adopt(str(tmp_path / CID), container_id=CID, ifname="eth0", netns="", cni_version="1.0.0",
                          result_dirs=[], default_cni_args="")
    assert caught.value.code == Code.DECODING_FAILURE
    assert str(tmp_path / CID) in caught.value.msg


def test_without_libcni_results_delegates_are_adopted_without_prev_result(tmp_path: Path) -> None:
    record = _layout(tmp_path)
    for result in (tmp_path / "results").iterdir():
        result.unlink()
    entry = multuscache.adopt(str(record), container_id=CID, ifname="eth0", netns="/n", cni_version="1.0.0",
                              result_dirs=[str(tmp_path)], default_cni_args="K8S_POD_NAME=x")
    assert [a.result for a in entry.attachments] == [None, None, None]
    assert {a.cni_args for a in entry.attachments} == {"K8S_POD_NAME=x"}
