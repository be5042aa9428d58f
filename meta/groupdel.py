"""DEL's batch step: every link one invocation created goes in one RTM_DELLINK.

Each link deletion costs the kernel an RCU grace period (about 25 ms); deleting the
invocation's interface group (recorded in its cache entry, `interfaceGroup`) pays one for
all of them. It runs before the delegates' own DELs, which then find their links gone
and still release IPAM, nftables and host-side state per attachment, in reverse order;
they also remain the safety net for links the group did not cover (an exec'd delegate's,
an older cache without a group). Links moved in rather than created (host-device) never
join a group, so they are returned by their delegate, not deleted here. Another netplex
invocation on the same sandbox has its own group, which this never touches.
"""

from __future__ import annotations

import logging

from delegates.netlink import errors, links
from meta import cache

log = logging.getLogger(__name__)

__all__ = ["delete_links"]


def delete_links(entry: cache.CacheEntry, netns: str) -> bool:
    """Delete `entry`'s interface group in the sandbox `netns`; True if links went.

    Never raises for a netlink failure: the delegates' DELs that follow are the fallback.
    """
    if not entry.interface_group or not netns:
        return False
    try:
        return links.delete_group(netns, entry.interface_group)
    except (errors.NetlinkFailure, errors.NetnsNotFound, OSError) as exc:
        log.warning("DEL of %s: group %d not deleted in one batch (%s); the delegates delete",
                    entry.pod, entry.interface_group, exc)
        return False
