"""The netlink layer against the real kernel, in throwaway namespaces.

Results are checked with `ip -j` (the kernel's view), not with the code under test. The
autouse `host_unchanged` fixture checks after every test that the host namespace was not
touched, which is also the regression test for an IPRoute talking to the wrong namespace.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import os
import pickle
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest

from delegates.netlink import (
    KindNotSupported,
    LinkExists,
    LinkNotFound,
    NetlinkFailure,
    NetnsNotFound,
    WrongLinkKind,
    addrs,
    links,
    netns,
    routes,
    sysctl,
)
from tests.netns.conftest import Uplink, ip_json, ns_name

IP4 = ipaddress.IPv4Interface
IP6 = ipaddress.IPv6Interface


def link_json(ns: str, name: str) -> Any:
    [found] = ip_json("-d", "link", "show", "dev", name, ns=ns)
    return found


def must_get(ns: str, name: str) -> links.Link:
    link = links.get(ns, name)
    assert link is not None, f"no link {name!r} in {ns}"
    return link


def bridge_cmd(ns: str, *args: str) -> str:
    """`bridge ARGS` inside namespace path `ns` (the kernel's view of bridge ports)."""
    argv = ["ip", "netns", "exec", ns_name(ns), "bridge", *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def link_names(ns: str) -> set[str]:
    return {link["ifname"] for link in ip_json("link", "show", ns=ns)}


def ns_inode(path: str) -> int:
    return os.stat(path).st_ino


# --- namespaces ---------------------------------------------------------------------------


def test_create_makes_a_namespace_that_ip_sees_and_remove_is_idempotent() -> None:
    name = f"npt-{os.urandom(5).hex()}"
    path = netns.create(name)
    try:
        assert path == netns.path_for(name) == f"/run/netns/{name}"
        assert netns.exists(path)
        assert name in subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True).stdout
        assert link_names(path) == {"lo"}
    finally:
        netns.remove(name)
    netns.remove(name)
    assert not netns.exists(path)
    assert not os.path.exists(path)


def test_create_an_existing_name_fails(container_ns: str) -> None:
    with pytest.raises(FileExistsError):
        netns.create(ns_name(container_ns))
    assert netns.exists(container_ns)


@pytest.mark.parametrize("name", ["", "a/b", ".", ".."])
def test_path_for_rejects_names_that_are_not_one_path_component(name: str) -> None:
    with pytest.raises(ValueError, match="invalid network namespace name"):
        netns.path_for(name)


def test_exists_is_false_for_a_plain_file_and_a_missing_path(tmp_path: os.PathLike[str]) -> None:
    plain = os.path.join(tmp_path, "not-a-netns")
    open(plain, "w").close()
    assert not netns.exists(plain)
    assert not netns.exists(os.path.join(tmp_path, "missing"))


def test_run_on_a_missing_namespace_raises_netns_not_found() -> None:
    with pytest.raises(NetnsNotFound, match="not found") as caught:
        netns.run("/run/netns/npt-missing-0000", lambda ipr: None)
    assert isinstance(caught.value, LookupError)


def test_run_on_a_stale_file_that_is_no_namespace_raises_netns_not_found(tmp_path: os.PathLike[str]) -> None:
    stale = os.path.join(tmp_path, "stale")
    open(stale, "w").close()
    with pytest.raises(NetnsNotFound):
        netns.call(stale, lambda: None)


def test_run_enters_the_namespace_in_a_worker_and_leaves_the_caller_where_it_was(container_ns: str) -> None:
    caller_before = os.stat("/proc/thread-self/ns/net").st_ino
    inside = netns.call(container_ns, lambda: os.stat("/proc/thread-self/ns/net").st_ino)
    assert inside == ns_inode(container_ns) != caller_before
    assert os.stat("/proc/thread-self/ns/net").st_ino == caller_before
    assert netns.call(None, lambda: os.stat("/proc/thread-self/ns/net").st_ino) == caller_before


def test_run_reraises_the_workers_exception(container_ns: str) -> None:
    def boom(ipr: object) -> None:
        raise KeyError("from the worker")

    with pytest.raises(KeyError, match="from the worker"):
        netns.run(container_ns, boom)


def test_concurrent_runs_each_see_their_own_namespace(make_ns: Callable[..., str]) -> None:
    paths = [make_ns() for _ in range(4)]
    for index, path in enumerate(paths):
        addrs_target = IP4(f"10.99.{index}.1/24")
        links.set_up(path, "lo")
        addrs.add(path, "lo", addrs_target)
    seen: dict[str, list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]] = {}

    def look(path: str) -> None:
        seen[path] = addrs.list_addrs(path, "lo", family=4, all_scopes=True)

    threads = [threading.Thread(target=look, args=(path,)) for path in paths for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, path in enumerate(paths):
        assert IP4(f"10.99.{index}.1/24") in seen[path]
        assert all(str(a).startswith(("127.", f"10.99.{index}.")) for a in seen[path])


def test_run_works_from_inside_a_running_event_loop(container_ns: str) -> None:
    async def main() -> list[str]:
        return netns.run(container_ns, lambda ipr: [msg.get("IFLA_IFNAME") for msg in ipr.link("dump")])

    assert asyncio.run(main()) == ["lo"]


def test_netlink_failure_reads_as_a_cni_message_and_survives_pickling() -> None:
    failure = LinkExists("create veth", "eth0")
    assert str(failure) == 'failed to create veth "eth0": link already exists'
    assert failure.errno == errno.EEXIST and isinstance(failure, OSError)
    copy = pickle.loads(pickle.dumps(failure))
    assert type(copy) is LinkExists and str(copy) == str(failure)
    assert str(NetnsNotFound("/run/netns/x")) == 'network namespace "/run/netns/x" not found'


# --- veth ---------------------------------------------------------------------------------


def test_create_veth_puts_each_end_in_its_namespace(host_ns: str, container_ns: str) -> None:
    host, peer = links.create_veth(
        host_name="vh-a",
        peer_name="eth0",
        peer_netns=container_ns,
        host_netns=host_ns,
        mtu=1400,
        peer_mac="02:00:00:00:00:aa",
        group=7,
    )
    seen_host, seen_peer = link_json(host_ns, "vh-a"), link_json(container_ns, "eth0")
    assert (host.name, host.kind, host.mtu, host.group, host.up) == ("vh-a", "veth", 1400, 7, True)
    assert (peer.name, peer.kind, peer.mac, peer.up) == ("eth0", "veth", "02:00:00:00:00:aa", False)
    assert seen_host["mtu"] == seen_peer["mtu"] == 1400
    assert seen_peer["address"] == "02:00:00:00:00:aa"
    assert seen_host["group"] == seen_peer["group"] == "7"
    assert "UP" in seen_host["flags"] and "UP" not in seen_peer["flags"]
    assert seen_host["ifindex"] == host.index and seen_peer["ifindex"] == peer.index
    assert seen_host["link_index"] == peer.index and seen_peer["link_index"] == host.index
    assert "eth0" not in link_names(host_ns) and "vh-a" not in link_names(container_ns)


def test_create_veth_can_bring_the_peer_up(host_ns: str, container_ns: str) -> None:
    _, peer = links.create_veth(
        host_name="vh-up", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns, peer_up=True
    )
    assert peer.up
    assert "UP" in link_json(container_ns, "eth0")["flags"]


def test_create_veth_with_a_taken_peer_name_fails_and_leaves_nothing(host_ns: str, container_ns: str) -> None:
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    with pytest.raises(LinkExists, match='"eth0"') as caught:
        links.create_veth(host_name="vh-b", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    assert caught.value.errno == errno.EEXIST
    assert link_names(host_ns) == {"lo", "vh-a"}
    assert link_names(container_ns) == {"lo", "eth0"}


def test_create_veth_with_a_taken_host_name_names_the_host_end(host_ns: str, container_ns: str) -> None:
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    with pytest.raises(LinkExists, match='"vh-a"'):
        links.create_veth(host_name="vh-a", peer_name="eth1", peer_netns=container_ns, host_netns=host_ns)
    assert link_names(container_ns) == {"lo", "eth0"}


def test_create_veth_into_a_missing_namespace_raises_and_leaves_nothing(host_ns: str) -> None:
    with pytest.raises(NetnsNotFound):
        links.create_veth(
            host_name="vh-a", peer_name="eth0", peer_netns="/run/netns/npt-missing-0000", host_netns=host_ns
        )
    assert link_names(host_ns) == {"lo"}


# --- bridge -------------------------------------------------------------------------------


def test_ensure_bridge_pins_its_mac_when_lower_mac_ports_join(host_ns: str, make_ns: Callable[..., str]) -> None:
    bridge = links.ensure_bridge("br-pin", netns=host_ns)
    assert bridge.kind == "bridge" and bridge.up
    assert bridge.mac == links.bridge_mac("br-pin")
    assert int(bridge.mac.split(":")[0], 16) & 0x03 == 0x02  # unicast, locally administered
    # control: an unpinned bridge takes its lowest port's MAC, which is what we must avoid
    subprocess.run(["ip", "-n", ns_name(host_ns), "link", "add", "br-free", "type", "bridge"], check=True)
    for number, mac in enumerate(["00:00:00:00:00:02", "00:00:00:00:00:01"]):
        pod = make_ns()
        links.create_veth(host_name=f"vp{number}", peer_name="eth0", peer_netns=pod, host_netns=host_ns, host_mac=mac)
        links.set_master(host_ns, f"vp{number}", "br-pin")
        pod2 = make_ns()
        links.create_veth(host_name=f"vq{number}", peer_name="eth0", peer_netns=pod2, host_netns=host_ns, host_mac=mac)
        links.set_master(host_ns, f"vq{number}", "br-free")
    assert link_json(host_ns, "br-free")["address"] == "00:00:00:00:00:01"
    assert link_json(host_ns, "br-pin")["address"] == bridge.mac
    links.delete_if_exists(host_ns, "vp1")
    assert link_json(host_ns, "br-pin")["address"] == bridge.mac


def test_ensure_bridge_is_idempotent(host_ns: str) -> None:
    first = links.ensure_bridge("br0", netns=host_ns, mtu=1450, mac="02:11:22:33:44:55")
    again = links.ensure_bridge("br0", netns=host_ns, mtu=9000)
    assert again.index == first.index and again.mac == "02:11:22:33:44:55" and again.mtu == 1450
    seen = link_json(host_ns, "br0")
    assert seen["linkinfo"]["info_kind"] == "bridge" and seen["mtu"] == 1450


def test_ensure_bridge_turns_promisc_on_and_brings_an_existing_bridge_up(host_ns: str) -> None:
    subprocess.run(["ip", "-n", ns_name(host_ns), "link", "add", "br0", "type", "bridge"], check=True)
    bridge = links.ensure_bridge("br0", netns=host_ns, promisc=True)
    assert bridge.up and bridge.promisc
    seen = link_json(host_ns, "br0")
    assert "UP" in seen["flags"] and seen["promiscuity"] == 1


def test_ensure_bridge_refuses_a_link_of_another_kind(host_ns: str, container_ns: str) -> None:
    links.create_veth(host_name="br0", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    with pytest.raises(WrongLinkKind, match=r'"br0".*veth'):
        links.ensure_bridge("br0", netns=host_ns)


def test_set_master_hairpin_and_release(host_ns: str, container_ns: str) -> None:
    bridge = links.ensure_bridge("br0", netns=host_ns)
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    links.set_master(host_ns, "vh-a", "br0")
    links.set_hairpin(host_ns, "vh-a", True)
    port = links.get(host_ns, "vh-a")
    assert port is not None and port.master_index == bridge.index and port.hairpin is True
    seen = link_json(host_ns, "vh-a")
    assert seen["master"] == "br0" and seen["linkinfo"]["info_slave_data"]["hairpin"] is True
    links.set_hairpin(host_ns, "vh-a", False)
    assert link_json(host_ns, "vh-a")["linkinfo"]["info_slave_data"]["hairpin"] is False
    links.set_master(host_ns, "vh-a", None)
    assert "master" not in link_json(host_ns, "vh-a")


def test_set_port_isolated_on_and_off(host_ns: str, container_ns: str) -> None:
    links.ensure_bridge("br0", netns=host_ns)
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    links.set_master(host_ns, "vh-a", "br0")
    port = links.get(host_ns, "vh-a")
    assert port is not None and port.isolated is False

    links.set_port_isolated(host_ns, "vh-a", True)

    port = links.get(host_ns, "vh-a")
    assert port is not None and port.isolated is True and port.hairpin is False
    [seen] = json.loads(bridge_cmd(host_ns, "-j", "-d", "link", "show", "dev", "vh-a"))
    assert seen["isolated"] is True
    links.set_port_isolated(host_ns, "vh-a", False)
    [seen] = json.loads(bridge_cmd(host_ns, "-j", "-d", "link", "show", "dev", "vh-a"))
    assert seen["isolated"] is False


def test_set_port_isolated_on_a_link_that_is_no_bridge_port_fails(host_ns: str, container_ns: str) -> None:
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    assert (must_get(host_ns, "vh-a").master_index, must_get(host_ns, "vh-a").isolated) == (None, None)
    with pytest.raises(NetlinkFailure, match='set isolated on "vh-a"'):
        links.set_port_isolated(host_ns, "vh-a", True)
    with pytest.raises(LinkNotFound, match='"missing0"'):
        links.set_port_isolated(host_ns, "missing0", True)


def test_set_alias_sets_and_clears_the_kernels_ifalias(host_ns: str, container_ns: str) -> None:
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    assert must_get(host_ns, "vh-a").alias is None

    links.set_alias(host_ns, "vh-a", "netplex:net1:pod/eth0")

    assert link_json(host_ns, "vh-a")["ifalias"] == "netplex:net1:pod/eth0"
    assert must_get(host_ns, "vh-a").alias == "netplex:net1:pod/eth0"
    links.set_alias(host_ns, "vh-a", "")
    assert "ifalias" not in link_json(host_ns, "vh-a")
    assert must_get(host_ns, "vh-a").alias is None


def test_set_alias_refuses_what_the_kernel_would_truncate_and_a_missing_link(host_ns: str, container_ns: str) -> None:
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    links.set_alias(host_ns, "vh-a", "a" * links.MAX_ALIAS)
    assert link_json(host_ns, "vh-a")["ifalias"] == "a" * links.MAX_ALIAS
    with pytest.raises(ValueError, match=f"longer than {links.MAX_ALIAS}"):
        links.set_alias(host_ns, "vh-a", "a" * (links.MAX_ALIAS + 1))
    with pytest.raises(ValueError, match="NUL"):
        links.set_alias(host_ns, "vh-a", "a\0b")
    with pytest.raises(LinkNotFound, match='"missing0"'):
        links.set_alias(host_ns, "missing0", "x")


def test_create_veth_tags_the_host_end_with_an_alias(host_ns: str, container_ns: str) -> None:
    host, peer = links.create_veth(
        host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns, host_alias="netplex:n:c/eth0"
    )

    assert host.alias == "netplex:n:c/eth0" and host.up
    assert link_json(host_ns, "vh-a")["ifalias"] == "netplex:n:c/eth0"
    assert peer.alias is None and "ifalias" not in link_json(container_ns, "eth0")


def test_create_veth_with_a_bad_alias_creates_nothing(host_ns: str, container_ns: str) -> None:
    with pytest.raises(ValueError):
        links.create_veth(
            host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns, host_alias="x" * 300
        )
    assert link_names(host_ns) == {"lo"} and link_names(container_ns) == {"lo"}


def test_set_mtu_mac_group_promisc_up_down_rename(host_ns: str, container_ns: str) -> None:
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    links.set_mtu(container_ns, "eth0", 1280)
    links.set_mac(container_ns, "eth0", "02:AB:CD:00:00:01")
    links.set_group(container_ns, "eth0", 12)
    links.set_promisc(container_ns, "eth0", True)
    links.set_up(container_ns, "eth0")
    seen = link_json(container_ns, "eth0")
    assert (seen["mtu"], seen["address"], seen["group"], seen["promiscuity"]) == (1280, "02:ab:cd:00:00:01", "12", 1)
    assert "UP" in seen["flags"]
    links.set_down(container_ns, "eth0")
    links.rename(container_ns, "eth0", "net7")
    assert link_names(container_ns) == {"lo", "net7"}
    with pytest.raises(LinkNotFound, match='"eth0"'):
        links.set_up(container_ns, "eth0")


def test_get_and_list_links_report_the_kernels_view(host_ns: str, container_ns: str) -> None:
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    assert links.get(container_ns, "missing0") is None
    listed = links.list_links(container_ns)
    assert [link.name for link in listed] == [link["ifname"] for link in ip_json("link", "show", ns=container_ns)]
    lo = listed[0]
    assert (lo.name, lo.kind, lo.mac, lo.link_index) == ("lo", "", "00:00:00:00:00:00", None)


# --- macvlan / ipvlan ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru"])
def test_create_macvlan_inside_the_pod_namespace_with_its_mode(uplink: Uplink, container_ns: str, mode: str) -> None:
    created = links.create_macvlan(
        master=uplink.name,
        ifname="net1",
        netns=container_ns,
        master_netns=uplink.host_ns,
        mode=mode,
        mtu=1400,
        mac="02:00:00:00:01:01" if mode != "passthru" else None,
        group=3,
    )
    seen = link_json(container_ns, "net1")
    assert seen["linkinfo"]["info_kind"] == "macvlan"
    assert seen["linkinfo"]["info_data"]["mode"] == mode
    assert (created.name, created.kind, created.mode, created.mtu, created.group) == ("net1", "macvlan", mode, 1400, 3)
    assert not created.up
    if mode != "passthru":
        assert seen["address"] == created.mac == "02:00:00:00:01:01"
    assert link_names(uplink.host_ns) == {"lo", uplink.name}


def test_create_macvlan_with_a_missing_master_raises_link_not_found(host_ns: str, container_ns: str) -> None:
    with pytest.raises(LinkNotFound, match='"nosuch0"'):
        links.create_macvlan(master="nosuch0", ifname="net1", netns=container_ns, master_netns=host_ns, mode="bridge")
    assert link_names(container_ns) == {"lo"}


def test_create_macvlan_with_a_taken_name_raises_link_exists(uplink: Uplink, container_ns: str) -> None:
    kwargs = {"master": uplink.name, "ifname": "net1", "netns": container_ns, "master_netns": uplink.host_ns}
    links.create_macvlan(**kwargs, mode="bridge")  # type: ignore[arg-type]
    with pytest.raises(LinkExists, match='"net1"'):
        links.create_macvlan(**kwargs, mode="bridge")  # type: ignore[arg-type]


def test_create_macvlan_rejects_an_unknown_mode(uplink: Uplink, container_ns: str) -> None:
    with pytest.raises(ValueError, match="unknown macvlan mode"):
        links.create_macvlan(
            master=uplink.name, ifname="net1", netns=container_ns, master_netns=uplink.host_ns, mode="x"
        )


def test_create_macvlan_with_link_in_container(container_ns: str, make_ns: Callable[..., str]) -> None:
    wire = make_ns("npw-")
    links.create_veth(host_name="wire0", peer_name="uplink0", peer_netns=container_ns, host_netns=wire)
    created = links.create_macvlan(
        master="uplink0", ifname="net1", netns=container_ns, mode="vepa", link_in_container=True
    )
    uplink_index = link_json(container_ns, "uplink0")["ifindex"]
    assert created.link_index == uplink_index and created.link_netnsid is None
    assert link_json(container_ns, "net1")["link"] == "uplink0"


def _kernel_has_ipvlan(uplink: Uplink) -> bool:
    probe = subprocess.run(
        ["ip", "-n", ns_name(uplink.host_ns), "link", "add", "link", uplink.name, "ipvl-probe", "type", "ipvlan"],
        check=False,
        capture_output=True,
    )
    if probe.returncode == 0:
        subprocess.run(["ip", "-n", ns_name(uplink.host_ns), "link", "del", "ipvl-probe"], check=True)
    return probe.returncode == 0


def test_create_ipvlan_works_or_reports_the_missing_kind(
    uplink: Uplink, container_ns: str, make_ns: Callable[..., str]
) -> None:
    request = {"master": uplink.name, "ifname": "net1", "netns": container_ns, "master_netns": uplink.host_ns}
    if not _kernel_has_ipvlan(uplink):
        with pytest.raises(KindNotSupported, match='"net1": link kind "ipvlan" is not supported') as caught:
            links.create_ipvlan(**request, mode="l3", flags="private")  # type: ignore[arg-type]
        assert caught.value.errno == errno.EOPNOTSUPP
        assert isinstance(caught.value, NetlinkFailure)
        assert link_names(container_ns) == {"lo"}
        return
    created = links.create_ipvlan(**request, mode="l3", flags="private")  # type: ignore[arg-type]
    assert (created.kind, created.mode, created.ipvlan_flags) == ("ipvlan", "l3", "private")


def test_create_ipvlan_rejects_an_unknown_mode(uplink: Uplink, container_ns: str) -> None:
    with pytest.raises(ValueError, match="unknown ipvlan mode"):
        links.create_ipvlan(master=uplink.name, ifname="net1", netns=container_ns, mode="l4")


# --- deleting -----------------------------------------------------------------------------


def test_delete_if_exists_on_missing_namespace_and_link_is_false(container_ns: str) -> None:
    assert links.delete_if_exists("/run/netns/npt-missing-0000", "eth0") is False
    assert links.delete_if_exists(container_ns, "eth0") is False


def test_delete_if_exists_deletes_the_link_and_its_veth_peer(host_ns: str, container_ns: str) -> None:
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    assert links.delete_if_exists(container_ns, "eth0") is True
    assert link_names(container_ns) == {"lo"} and link_names(host_ns) == {"lo"}
    assert links.delete_if_exists(container_ns, "eth0") is False


def test_delete_group_removes_all_links_of_the_group_at_once(host_ns: str, make_ns: Callable[..., str]) -> None:
    for number in range(4):
        links.create_veth(host_name=f"vg{number}", peer_name="eth0", peer_netns=make_ns(), host_netns=host_ns, group=42)
    links.create_veth(host_name="vkeep", peer_name="eth0", peer_netns=make_ns(), host_netns=host_ns)
    assert links.delete_group(host_ns, 42) is True
    assert link_names(host_ns) == {"lo", "vkeep"}
    assert links.delete_group(host_ns, 42) is False
    assert links.delete_group("/run/netns/npt-missing-0000", 42) is False


def test_delete_group_refuses_the_default_group(host_ns: str) -> None:
    with pytest.raises(ValueError, match="group 0"):
        links.delete_group(host_ns, 0)


# --- addresses ----------------------------------------------------------------------------


def test_addresses_add_list_delete_are_idempotent(host_ns: str, container_ns: str) -> None:
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    v4, v6 = IP4("10.1.2.3/24"), IP6("fd00:1::3/64")
    for _ in range(2):
        addrs.add(container_ns, "eth0", v4)
        addrs.add(container_ns, "eth0", v6, nodad=True)
    links.set_up(container_ns, "eth0")
    assert addrs.list_addrs(container_ns, "eth0") == [v4, v6]
    assert addrs.list_addrs(container_ns, "eth0", family=6) == [v6]
    assert any(a.ip.is_link_local for a in addrs.list_addrs(container_ns, "eth0", all_scopes=True))
    [seen] = ip_json("addr", "show", "dev", "eth0", ns=container_ns)
    by_local = {info["local"]: info for info in seen["addr_info"]}
    assert by_local["10.1.2.3"]["broadcast"] == "10.1.2.255"
    assert by_local["fd00:1::3"].get("nodad") is True and not by_local["fd00:1::3"].get("tentative")
    for _ in range(2):
        addrs.delete(container_ns, "eth0", v4)
        addrs.delete(container_ns, "eth0", v6)
    assert addrs.list_addrs(container_ns, "eth0") == []
    addrs.delete(container_ns, "missing0", v4)
    addrs.delete("/run/netns/npt-missing-0000", "eth0", v4)


def test_adding_an_address_to_a_missing_link_raises_link_not_found(container_ns: str) -> None:
    with pytest.raises(LinkNotFound, match='"eth9"'):
        addrs.add(container_ns, "eth9", IP4("10.1.2.3/24"))


def test_an_address_added_through_run_lands_in_the_pod_not_the_host(container_ns: str) -> None:
    # the regression: an IPRoute used outside the thread that entered the pod namespace
    # silently writes to the host; host_unchanged checks the host side after the test
    addrs.add(container_ns, "lo", IP4("10.254.0.1/32"))
    [lo] = ip_json("addr", "show", "dev", "lo", ns=container_ns)
    assert "10.254.0.1" in {info["local"] for info in lo["addr_info"]}


# --- routes -------------------------------------------------------------------------------


@pytest.fixture
def pod_eth0(host_ns: str, container_ns: str) -> str:
    """`eth0` in container_ns, up, with 10.1.2.3/24 and fd00:1::3/64."""
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns, peer_up=True)
    addrs.add(container_ns, "eth0", IP4("10.1.2.3/24"))
    addrs.add(container_ns, "eth0", IP6("fd00:1::3/64"), nodad=True)
    return container_ns


def test_routes_add_list_replace_delete_are_idempotent(pod_eth0: str) -> None:
    ns = pod_eth0
    route = routes.Route(
        dst=ipaddress.ip_network("10.20.0.0/16"),
        gw=ipaddress.ip_address("10.1.2.1"),
        ifname="eth0",
        metric=100,
        mtu=1300,
        advmss=1260,
    )
    routes.add(ns, route)
    routes.add(ns, route)
    [listed] = [r for r in routes.list_routes(ns, family=4) if r.dst == route.dst]
    assert (listed.gw, listed.ifname, listed.metric, listed.table, listed.mtu, listed.advmss) == (
        route.gw,
        "eth0",
        100,
        254,
        1300,
        1260,
    )
    [seen] = ip_json("route", "show", "10.20.0.0/16", ns=ns)
    assert seen["gateway"] == "10.1.2.1" and seen["metric"] == 100
    routes.replace(ns, routes.Route(dst=route.dst, gw=ipaddress.ip_address("10.1.2.2"), ifname="eth0", metric=100))
    [seen] = ip_json("route", "show", "10.20.0.0/16", ns=ns)
    assert seen["gateway"] == "10.1.2.2"
    routes.delete(ns, routes.Route(dst=route.dst, metric=100))
    routes.delete(ns, routes.Route(dst=route.dst, metric=100))
    assert ip_json("route", "show", "10.20.0.0/16", ns=ns) == []
    routes.delete(ns, routes.Route(dst=route.dst, ifname="missing0"))


def test_routes_in_another_table_and_ipv6(pod_eth0: str) -> None:
    ns = pod_eth0
    v6 = routes.Route(dst=ipaddress.ip_network("fd00:99::/48"), gw=ipaddress.ip_address("fd00:1::1"), ifname="eth0")
    in_table = routes.Route(dst=ipaddress.ip_network("10.30.0.0/16"), ifname="eth0", table=100)
    routes.add(ns, v6)
    routes.add(ns, in_table)
    assert v6.dst in {r.dst for r in routes.list_routes(ns, family=6)}
    assert in_table.dst not in {r.dst for r in routes.list_routes(ns)}
    [listed] = routes.list_routes(ns, table=100)
    assert (listed.dst, listed.ifname, listed.table, listed.scope, listed.gw) == (in_table.dst, "eth0", 100, 253, None)
    assert {r.dst for r in routes.list_routes(ns, ifname="eth0", table=None)} >= {v6.dst, in_table.dst}
    routes.delete(ns, in_table)
    assert routes.list_routes(ns, table=100) == []


def test_default_route_ifname_prefers_ipv4_then_ipv6(pod_eth0: str, host_ns: str) -> None:
    ns = pod_eth0
    assert routes.default_route_ifname(ns) is None
    links.create_veth(host_name="vh-b", peer_name="eth1", peer_netns=ns, host_netns=host_ns, peer_up=True)
    addrs.add(ns, "eth1", IP6("fd00:2::3/64"), nodad=True)
    routes.add(ns, routes.Route(dst=ipaddress.ip_network("::/0"), gw=ipaddress.ip_address("fd00:2::1"), ifname="eth1"))
    assert routes.default_route_ifname(ns) == "eth1"
    routes.add(ns, routes.Route(dst=ipaddress.ip_network("0.0.0.0/0"), gw=ipaddress.ip_address("10.1.2.1")))
    assert routes.default_route_ifname(ns) == "eth0"
    [default] = [r for r in routes.list_routes(ns, family=4) if r.is_default]
    assert default.gw == ipaddress.ip_address("10.1.2.1") and default.ifname == "eth0"


def test_default_route_ifname_of_the_current_namespace_matches_ip() -> None:
    expected = [r["dev"] for r in ip_json("-4", "route", "show", "default")] or [
        r["dev"] for r in ip_json("-6", "route", "show", "default")
    ]
    assert routes.default_route_ifname() == (expected[0] if expected else None)


# --- sysctl -------------------------------------------------------------------------------


def test_sysctl_in_a_namespace_leaves_the_hosts_value_alone(container_ns: str) -> None:
    host_value = sysctl.get_value(None, "net.ipv4.ip_forward")
    wanted = "0" if host_value == "1" else "1"
    sysctl.set_value(container_ns, "net.ipv4.ip_forward", wanted)
    assert sysctl.get_value(container_ns, "net/ipv4/ip_forward") == wanted
    assert sysctl.get_value(None, "net.ipv4.ip_forward") == host_value
    with open("/proc/sys/net/ipv4/ip_forward") as file:
        assert file.read().strip() == host_value
    inside = subprocess.run(
        ["ip", "netns", "exec", ns_name(container_ns), "cat", "/proc/sys/net/ipv4/ip_forward"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert inside.stdout.strip() == wanted


def test_sysctl_for_a_link_that_exists_only_in_the_namespace(host_ns: str, container_ns: str) -> None:
    links.create_veth(host_name="vh-a", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
    sysctl.set_value(container_ns, "net.ipv6.conf.eth0.accept_dad", "0")
    assert sysctl.get_value(container_ns, "net.ipv6.conf.eth0.accept_dad") == "0"
    with pytest.raises(NetlinkFailure) as caught:
        sysctl.get_value(container_ns, "net.ipv6.conf.nosuch0.accept_dad")
    assert caught.value.errno == errno.ENOENT


@pytest.mark.parametrize("key", ["kernel.hostname", "net", "net..ipv4", "net/../kernel/hostname"])
def test_sysctl_accepts_only_net_keys(container_ns: str, key: str) -> None:
    with pytest.raises(ValueError, match="invalid network sysctl key"):
        sysctl.set_value(container_ns, key, "x")



def test_a_namespace_recreated_at_the_same_path_gets_a_fresh_worker() -> None:
    name = netns.unique_name("npc-")
    path = netns.create(name)
    try:
        before = netns.call(path, lambda: os.stat("/proc/thread-self/ns/net").st_ino)
        netns.remove(name)
        netns.create(name)
        after = netns.call(path, lambda: os.stat("/proc/thread-self/ns/net").st_ino)
        assert after == ns_inode(path) != before
    finally:
        netns.remove(name)


def test_a_nested_call_back_into_the_callers_namespace_does_not_deadlock(container_ns: str) -> None:
    def names(ipr: Any) -> list[str]:
        return [m.get("IFLA_IFNAME") for m in ipr.link("dump")]

    assert netns.call(container_ns, lambda: netns.run(None, names)) == ["lo"]
