"""The daemon's netplex-ipam reconciler, in-process against the API double: it frees what
gone pods and deleted claims held, never what a live or starting pod holds, and gives
back blocks that stayed empty."""

from __future__ import annotations

import ipaddress
import json

import pytest

from cni import skel
from delegates.ipam.cluster import config, context
from delegates.ipam.cluster.reconcile import Reconciler
from tests.kube.ipam_scene import IpamScene, ipam_api_fixture, new_container  # noqa: F401

pytestmark = pytest.mark.kube


def _reconciler(scene: IpamScene, live: dict[tuple[str, str], str] | None, *, grace: float = 0.0) -> Reconciler:
    conf = config.load(json.dumps(scene.conf(nodeName="node-1")).encode(), skel.CmdArgs(command="ADD"))
    api = context.client_for(conf)  # the client the plugin uses, so the block cache is shared
    assert api is not None
    return Reconciler(node="node-1", api=api, live_pods=lambda: live, grace=grace, data_dirs=(str(scene.data_dir),))


def _pod(scene: IpamScene, name: str) -> tuple[str, str]:
    uid = scene.api.add_pod("default", name, node_name="node-1")["metadata"]["uid"]
    ip = scene.add(scene.conf(nodeName="node-1"), container_id=new_container(), pod=name, uid=uid)
    return ip, uid


def test_the_address_of_a_deleted_pod_is_freed_and_a_live_pods_is_kept(ipam_api: IpamScene) -> None:
    kept_ip, kept_uid = _pod(ipam_api, "kept")
    gone_ip, _ = _pod(ipam_api, "gone")
    ipam_api.api.delete_pod("default", "gone")
    freed = _reconciler(ipam_api, {("default", "kept"): kept_uid}).run_once()
    assert [str(record.ip) for record in freed] == [gone_ip]
    assert set(ipam_api.records()) == {kept_ip}


def test_a_pod_the_cache_has_not_seen_yet_keeps_its_address(ipam_api: IpamScene) -> None:
    starting_ip, _ = _pod(ipam_api, "starting")  # in the API, not (yet) in the watch cache
    assert _reconciler(ipam_api, {}).run_once() == []
    assert set(ipam_api.records()) == {starting_ip}


def test_nothing_is_freed_within_the_grace_period_or_before_the_cache_syncs(ipam_api: IpamScene) -> None:
    ip, _ = _pod(ipam_api, "young")
    ipam_api.api.delete_pod("default", "young")
    assert _reconciler(ipam_api, {}, grace=300).run_once() == []
    assert _reconciler(ipam_api, None).run_once() == []
    assert set(ipam_api.records()) == {ip}


def test_a_claims_address_is_freed_once_the_claim_is_deleted(ipam_api: IpamScene) -> None:
    ipam_api.add_claim("default", "vm")
    cid = new_container()
    conf = ipam_api.conf(nodeName="node-1", claim="vm")
    ip = ipam_api.add(conf, container_id=cid, pod="virt")
    ipam_api.call("DEL", conf, container_id=cid)
    reconciler = _reconciler(ipam_api, {})
    reconciler.run_once()
    assert ipam_api.records()[ip]["claim"] == "default/vm"
    ipam_api.api.delete_object(ipam_api.claims, "vm", "default")
    reconciler.run_once()
    assert ipam_api.records() == {}


def test_blocks_that_stay_empty_are_given_back_but_the_first(ipam_api: IpamScene) -> None:
    conf = ipam_api.conf(nodeName="node-1", block_size=30)
    cids = [new_container() for _ in range(9)]
    for cid in cids:
        ipam_api.add(conf, container_id=cid)
    assert len(ipam_api.block_owners()) >= 3
    for cid in cids:
        ipam_api.call("DEL", conf, container_id=cid)
    _reconciler(ipam_api, {}).run_once()
    owners = ipam_api.block_owners()
    assert list(owners.values()) == ["node-1"]
    again = ipam_api.add(conf, container_id=new_container())  # the cache was refreshed: still works
    assert ipaddress.ip_address(again) in ipaddress.ip_network(next(iter(owners)))
