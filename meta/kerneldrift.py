"""`netplex status --kernel`: the cache compared with what each pod's network namespace
really holds, so drift shows (an interface gone, or renamed behind netplex's back).

For every cached attachment the verdict is one of:
  ok                  its ifname is in the namespace (with the recorded MAC, if any)
  gone                neither its ifname nor a link with its MAC is there
  renamed to NAME     its ifname is gone, but a link with its recorded MAC is NAME
  replaced            its ifname is there with another MAC than the one recorded
  netns gone          the namespace recorded for the sandbox does not exist
  not added           the attachment never finished ADD (state pending)
  unknown             no netns recorded (a sandbox DELed with its netns gone)
The namespace is only read (one link dump per sandbox), never changed."""

from __future__ import annotations

import os
from typing import Any

from meta import cache

OK = "ok"


def verdicts(entry: cache.CacheEntry) -> list[str]:
    """One verdict per attachment of `entry`, in its order."""
    if not entry.netns:
        return ["unknown"] * len(entry.attachments)
    kernel = _links(entry.netns)
    if kernel is None:
        return ["netns gone"] * len(entry.attachments)
    by_mac = {mac: name for name, mac in kernel.items() if mac}
    found = []
    for attachment in entry.attachments:
        if attachment.state != "added":
            found.append("not added")
            continue
        mac = _recorded_mac(attachment.result, attachment.ifname, entry.netns)
        if attachment.ifname in kernel:
            found.append("replaced" if mac and kernel[attachment.ifname] != mac else OK)
        elif mac and mac in by_mac:
            found.append(f"renamed to {by_mac[mac]}")
        else:
            found.append("gone")
    return found


def _links(netns: str) -> dict[str, str] | None:
    """ifname -> MAC in the namespace, or None when it does not exist."""
    from delegates.netlink import errors, links  # pyroute2 only for --kernel

    if not os.path.exists(netns):
        return None
    try:
        return {link.name: link.mac.lower() for link in links.list_links(netns)}
    except errors.NetnsNotFound:
        return None


def _recorded_mac(result: dict[str, Any] | None, ifname: str, netns: str) -> str:
    for interface in (result or {}).get("interfaces", []) or []:
        if not isinstance(interface, dict) or interface.get("name") != ifname:
            continue
        if interface.get("sandbox") in (None, "", netns) or os.path.basename(str(interface.get("sandbox"))) == (
                os.path.basename(netns)):
            return str(interface.get("mac", "")).lower()
    return ""
