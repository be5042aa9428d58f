"""The raw rtnetlink codec (delegates.netlink._codec) against the kernel and pyroute2.

Every attribute the hot path sends is read back with `ip -j` (the kernel's view, not
ours); every link kind it decodes is compared field by field with the view pyroute2's
own decoder gives of the same link. Also: sockets are per request and close with it, and
a grouped invocation's links go with one RTM_DELLINK."""

from __future__ import annotations

import gc
import ipaddress
import os
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from delegates.netlink import _conn, addrs, batch, errors, links, netns, routes
from tests.netns.conftest import Uplink, ip_json


def _pyroute2_view(path: str, name: str) -> links.Link:
    """The same `Link`, decoded by pyroute2 (the pre-codec implementation, kept here)."""
    from delegates.netlink import _nl

    def read(ipr: Any) -> links.Link:
        msg = ipr.link("get", index=_nl.require_index(ipr, name, op="get"))[0]
        kind = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or ""
        data = ("IFLA_LINKINFO", "IFLA_INFO_DATA")
        mode = ipvlan_flags = vlan_filtering = hairpin = isolated = None
        if kind == "macvlan":
            mode = str(msg.get_nested(*data, "IFLA_MACVLAN_MODE"))
        if kind == "bridge":
            vlan_filtering = bool(msg.get_nested(*data, "IFLA_BR_VLAN_FILTERING"))
        if msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_SLAVE_KIND") == "bridge":
            port = ("IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA")
            hairpin = bool(msg.get_nested(*port, "IFLA_BRPORT_MODE"))
            isolated = bool(msg.get_nested(*port, "IFLA_BRPORT_ISOLATED"))
        flags = int(msg["flags"])
        return links.Link(
            name=msg.get("IFLA_IFNAME"), index=msg["index"], kind=kind, mac=msg.get("IFLA_ADDRESS") or "",
            mtu=msg.get("IFLA_MTU"), up=bool(flags & 1), master_index=msg.get("IFLA_MASTER") or None,
            group=msg.get("IFLA_GROUP") or 0, link_index=msg.get("IFLA_LINK"), mode=mode,
            alias=msg.get("IFLA_IFALIAS") or None, promisc=bool(flags & 0x100), lower_up=bool(flags & 0x10000),
            link_netnsid=msg.get("IFLA_LINK_NETNSID"), ipvlan_flags=ipvlan_flags,
            vlan_filtering=vlan_filtering, hairpin=hairpin, isolated=isolated,
        )

    return netns.run(path, read)


def test_the_codec_reads_veth_bridge_port_and_macvlan_links_as_pyroute2_does(
    host_ns: str, container_ns: str, uplink: Uplink
) -> None:
    links.ensure_bridge("cbr0", netns=host_ns, promisc=True)  # this kernel has no vlan filtering
    links.create_veth(
        host_name="cveth0", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns, mtu=1400,
        peer_mac="02:00:00:00:00:aa", group=7, host_alias="netplex test alias", peer_up=True,
    )
    links.set_master(host_ns, "cveth0", "cbr0")
    links.set_hairpin(host_ns, "cveth0", True)
    links.set_port_isolated(host_ns, "cveth0", True)
    links.create_macvlan(master=uplink.name, master_netns=host_ns, ifname="mv0", netns=container_ns, mode="vepa")
    for path, name in [(host_ns, "cbr0"), (host_ns, "cveth0"), (container_ns, "eth0"), (container_ns, "mv0"),
                       (container_ns, "lo")]:
        ours = links.get(path, name)
        theirs = _pyroute2_view(path, name)
        assert ours is not None
        ignore = {"ipvlan_flags"}  # pyroute2 0.9 does not decode it without our registration
        assert {k: v for k, v in msgspec.structs.asdict(ours).items() if k not in ignore} == {
            k: v for k, v in msgspec.structs.asdict(theirs).items() if k not in ignore
        }, name
    listed = {link.name: link for link in links.list_links(container_ns)}
    assert listed["mv0"] == links.get(container_ns, "mv0")


def test_every_link_attribute_the_codec_sends_is_what_the_kernel_reports(host_ns: str, container_ns: str) -> None:
    links.create_veth(
        host_name="cveth1", peer_name="eth1", peer_netns=container_ns, host_netns=host_ns, mtu=1380,
        host_mac="02:00:00:00:01:01", peer_mac="02:00:00:00:01:02", group=12345, host_alias="hello",
    )
    host = ip_json("-d", "link", "show", "cveth1", ns=host_ns)[0]
    peer = ip_json("-d", "link", "show", "eth1", ns=container_ns)[0]
    assert (host["mtu"], host["address"], host["group"]) == (1380, "02:00:00:00:01:01", "12345")
    assert host["ifalias"] == "hello"
    assert "UP" in host["flags"] and "UP" not in peer["flags"]
    assert (peer["mtu"], peer["address"], peer["group"]) == (1380, "02:00:00:00:01:02", "12345")
    assert host["linkinfo"]["info_kind"] == "veth" == peer["linkinfo"]["info_kind"]
    links.set_mtu(container_ns, "eth1", 1300)
    links.set_mac(container_ns, "eth1", "02:00:00:00:01:03")
    links.set_group(container_ns, "eth1", 9)
    links.set_promisc(container_ns, "eth1", True)
    links.rename(container_ns, "eth1", "net9")
    links.set_up(container_ns, "net9")
    peer = ip_json("-d", "link", "show", "net9", ns=container_ns)[0]
    assert (peer["mtu"], peer["address"], peer["group"]) == (1300, "02:00:00:00:01:03", "9")
    assert {"UP", "PROMISC"} <= set(peer["flags"])
    links.set_down(container_ns, "net9")
    assert "UP" not in ip_json("link", "show", "net9", ns=container_ns)[0]["flags"]


def test_the_addresses_and_routes_the_codec_sends_are_what_the_kernel_reports(container_ns: str, host_ns: str) -> None:
    links.create_veth(host_name="cveth2", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns, peer_up=True)
    addrs.add(container_ns, "eth0", ipaddress.ip_interface("10.9.8.7/24"))
    addrs.add(container_ns, "eth0", ipaddress.ip_interface("fd00:9::7/64"), nodad=True)
    addrs.add(container_ns, "eth0", ipaddress.ip_interface("10.9.8.7/24"))  # again: success
    info = {(a["local"], a["prefixlen"], a.get("broadcast")) for a in ip_json("addr", "show", "eth0",
                                                                               ns=container_ns)[0]["addr_info"]}
    assert ("10.9.8.7", 24, "10.9.8.255") in info and ("fd00:9::7", 64, None) in info
    route = routes.Route(
        dst=ipaddress.ip_network("10.50.0.0/16"), gw=ipaddress.ip_address("10.9.8.1"), ifname="eth0", metric=77,
        mtu=1200, advmss=1100, src=ipaddress.ip_address("10.9.8.7"),
    )
    routes.add(container_ns, route)
    routes.add(container_ns, route)  # again: success
    shown = ip_json("-d", "route", "show", "10.50.0.0/16", ns=container_ns)[0]
    assert (shown["gateway"], shown["dev"], shown["metric"], shown["prefsrc"]) == ("10.9.8.1", "eth0", 77, "10.9.8.7")
    assert shown["protocol"] == "boot"
    assert {"mtu": 1200, "advmss": 1100}.items() <= {k: v for m in shown["metrics"] for k, v in m.items()}.items()
    assert route.dst in {listed.dst for listed in routes.list_routes(container_ns)}
    routes.delete(container_ns, route)
    routes.delete(container_ns, route)  # gone: success
    assert ip_json("route", "show", "10.50.0.0/16", ns=container_ns) == []
    addrs.delete(container_ns, "eth0", ipaddress.ip_interface("10.9.8.7/24"))
    assert addrs.list_addrs(container_ns, "eth0") == [ipaddress.ip_interface("fd00:9::7/64")]


def test_the_codecs_address_listing_is_what_ip_reports(container_ns: str, host_ns: str) -> None:
    """list_addrs (one RTM_GETADDR dump) against `ip -j addr`: every scope and family, many
    addresses (a dump longer than one message), and other links' addresses left out."""
    links.create_veth(host_name="cveth3", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns, peer_up=True)
    links.create_veth(host_name="cveth4", peer_name="eth1", peer_netns=container_ns, host_netns=host_ns, peer_up=True)
    mine = [ipaddress.ip_interface(f"10.77.{i}.5/24") for i in range(40)] + [
        ipaddress.ip_interface("fd00:77::5/64"), ipaddress.ip_interface("10.78.0.1/32"),
    ]
    for address in mine:
        addrs.add(container_ns, "eth0", address, nodad=True)
    addrs.add(container_ns, "eth1", ipaddress.ip_interface("10.79.0.1/24"))
    shown = ip_json("addr", "show", "eth0", ns=container_ns)[0]["addr_info"]
    everything = {ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}") for a in shown}
    global_only = {ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}") for a in shown if a["scope"] == "global"}
    assert set(addrs.list_addrs(container_ns, "eth0", all_scopes=True)) == everything
    listed = addrs.list_addrs(container_ns, "eth0")
    assert set(listed) == global_only == set(mine)
    assert [a.version for a in listed] == sorted(a.version for a in listed)  # IPv4 first
    assert addrs.list_addrs(container_ns, "eth0", family=6) == [ipaddress.ip_interface("fd00:77::5/64")]
    with pytest.raises(errors.LinkNotFound):
        addrs.list_addrs(container_ns, "nope0")


def test_links_created_inside_grouped_join_the_group_and_go_in_one_delete(
    host_ns: str, container_ns: str, uplink: Uplink
) -> None:
    group = batch.new_group()
    with _conn.session(), batch.grouped(group):
        links.create_veth(host_name="cveth3", peer_name="eth0", peer_netns=container_ns, host_netns=host_ns)
        links.create_macvlan(master=uplink.name, master_netns=host_ns, ifname="net1", netns=container_ns, mode="bridge")
        links.create_veth(host_name="cveth4", peer_name="net2", peer_netns=container_ns, host_netns=host_ns,
                          group=5)  # an explicit group wins
    assert {link.name for link in links.list_links(container_ns) if link.group == group} == {"eth0", "net1"}
    assert links.delete_group(container_ns, group) is True
    assert {link.name for link in links.list_links(container_ns)} == {"lo", "net2"}
    assert links.get(host_ns, "cveth3") is None  # the host end went with its peer
    assert links.get(host_ns, "cveth4") is not None


def test_a_session_reuses_one_socket_per_namespace_and_closes_them_all_at_its_end(container_ns: str) -> None:
    with _conn.session():
        with _conn.using(container_ns) as first, _conn.using(container_ns) as second:
            assert first is second
            fd = first.sock.fileno()
        with _conn.using(None) as here:
            assert here is not first
    assert first.sock.fileno() == -1 and here.sock.fileno() == -1
    del fd
    with _conn.using(container_ns) as alone:
        pass
    assert alone.sock.fileno() == -1


def test_nothing_the_netlink_layer_used_keeps_a_deleted_namespace_alive(make_ns: Callable[..., str]) -> None:
    path = make_ns("npk-")
    inode = os.stat(path).st_ino
    with _conn.session():
        links.set_up(path, "lo")
        assert links.get(path, "lo") is not None
    netns.remove(os.path.basename(path))
    gc.collect()
    held = []
    for entry in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue
        if target == f"net:[{inode}]":
            held.append(entry)
    assert held == []


def test_the_hot_path_does_not_import_pyroute2() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom delegates.netlink import links, addrs, routes, batch\n"
        "print('pyroute2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_missing_namespace_is_netns_not_found_through_the_codec_too() -> None:
    from delegates.netlink import errors

    with pytest.raises(errors.NetnsNotFound):
        links.set_up("/run/netns/npt-missing-0000", "lo")
    assert links.delete_if_exists("/run/netns/npt-missing-0000", "eth0") is False


def test_a_namespace_call_runs_in_the_calling_thread_and_returns_it_home(container_ns: str) -> None:
    """`netns.call` enters the namespace from the calling thread and goes back (as the
    reference plugins' ns.Do): no thread is started, and after a call that raised the
    thread is in its own namespace again."""
    import threading

    def here() -> int:
        return os.stat("/proc/thread-self/ns/net").st_ino

    home = here()
    threads = {thread.ident for thread in threading.enumerate()}
    with _conn.session():
        assert netns.call(container_ns, threading.get_ident) == threading.get_ident()
        assert netns.call(container_ns, here) == os.stat(container_ns).st_ino
        assert here() == home
        with pytest.raises(ValueError, match="boom"):
            netns.call(container_ns, lambda: int("boom"))
        assert here() == home  # a call that raised still went back
        assert netns.call(container_ns, lambda: netns.call(None, here)) == os.stat(container_ns).st_ino
    assert {thread.ident for thread in threading.enumerate()} == threads
    with pytest.raises(netns.NetnsNotFound), _conn.session():
        netns.call("/run/netns/npt-missing-0000", lambda: None)
    assert here() == home
