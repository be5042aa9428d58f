"""Gratuitous ARP: announce a pod's new IPv4 addresses on its wire, from inside its namespace.

A macvlan (or L2 ipvlan) address may have belonged to another MAC a moment ago (a pod on
another node, a previous pod); neighbours keep sending to the old MAC until their cache
entry ages out. The reference plugin once sent a gratuitous ARP with `arping` and later
relied on `arp_notify`, which fires only when the link comes up, before the address is
there. So, after the address is configured, send one ARP request whose sender and target
are both the address, to the broadcast MAC, as `arping -U` does.

Best effort, as in the reference: a failure is logged and ignored. IPv6 neighbours are
not told (no unsolicited neighbour advertisement). Standard library only, no netlink.

Sending must not wait on the kernel. A packet socket opened for a protocol (or bound to
one) hooks into the receive path, and unhooking, on bind and again on close, waits for an
RCU grace period: about 25 ms of an ADD spent on nothing. So the socket is opened for no
protocol (it receives nothing), each frame goes out with `sendto` naming the interface
(the frame is handed to the device before `sendto` returns), and the close, which still
waits for one grace period, happens in a background thread.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading

from delegates.netlink import netns

log = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
BROADCAST = b"\xff" * 6


def frame(mac: str, address: ipaddress.IPv4Address) -> bytes:
    """The Ethernet frame of a gratuitous ARP request for `address` from `mac`."""
    hw = bytes.fromhex(mac.replace(":", ""))
    ip = address.packed
    ethernet = BROADCAST + hw + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", ARPHRD_ETHER, ETH_P_IP, 6, 4, ARPOP_REQUEST) + hw + ip + b"\x00" * 6 + ip
    return ethernet + arp


def announce(netns_path: str, ifname: str, mac: str, addresses: list[ipaddress.IPv4Address]) -> None:
    """Send one gratuitous ARP per address out of `ifname` in the namespace; never raises."""
    if not addresses or not mac:
        return

    def send() -> None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: no receive hook
        try:
            for address in addresses:
                sock.sendto(frame(mac, address), (ifname, ETH_P_ARP))
        finally:
            _close_later(sock)

    try:
        netns.call(netns_path, send)
    except (OSError, ValueError, LookupError) as exc:
        log.warning("gratuitous ARP on %s failed: %s", ifname, exc)


def _close_later(sock: socket.socket) -> None:
    """Close `sock` in a background thread: closing a packet socket waits for an RCU
    grace period, and nothing depends on when it ends (it receives nothing)."""
    try:
        threading.Thread(target=sock.close, name="netplex-garp-close", daemon=True).start()
    except RuntimeError:  # no more threads (or the interpreter is exiting): close here
        sock.close()
