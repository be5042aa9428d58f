"""deviceID placement: a selection element's deviceID goes top-level in the delegate's
config (and pciBusID, for host-device), in a conf and in every plugin of a conflist, as
Multus does; meta.netconfs.inject_device_id is the one function that does it."""

from __future__ import annotations

import json

from cni.config import Conflist
from meta import netconfs
from tests.unit.meta.test_resolve import CLUSTER, FakeSource, meta, plugin, pod, run

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def test_a_conf_dict_gets_device_id_top_level() -> None:
    conf = {"cniVersion": "1.0.0", "name": "sriov", "type": "sriov", "vlan": 5}
    assert netconfs.inject_device_id(conf, "0000:03:02.1") == {**conf, "deviceID": "0000:03:02.1",
                                                              "pciBusID": "0000:03:02.1"}
    assert "deviceID" not in conf  # a copy


def test_every_plugin_of_a_conflist_gets_it_and_an_empty_id_changes_nothing() -> None:
    network = Conflist.from_doc({"cniVersion": "1.0.0", "name": "n", "plugins": [
        {"type": "sriov"}, {"type": "tuning"}]})
    injected = netconfs.inject_device_id(network, "0000:03:02.1")
    assert [p["deviceID"] for p in injected.plugins] == ["0000:03:02.1", "0000:03:02.1"]
    assert netconfs.inject_device_id(network, "") is network
    as_dict = netconfs.inject_device_id({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "x"}]}, "d1")
    assert as_dict["plugins"] == [{"type": "x", "deviceID": "d1", "pciBusID": "d1"}]


def test_a_selected_network_carries_the_elements_device_id_in_its_config() -> None:
    source = FakeSource({**CLUSTER, "team/sriov": plugin("sriov", capabilities={"deviceID": True})})
    selection = json.dumps([{"name": "sriov", "deviceID": "0000:03:02.1"}])
    plan = run(meta(), source, pod({NETWORKS: selection}))
    assert plan[1].conflist.plugins[0]["deviceID"] == "0000:03:02.1"
    assert plan[1].capability_args.get("deviceID") == "0000:03:02.1"  # runtimeConfig too, when declared
    assert "deviceID" not in plan[0].conflist.plugins[0]
