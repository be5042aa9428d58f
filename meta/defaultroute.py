"""NPWG `default-route` in the kernel: the chosen attachment keeps (or gets, through the
named gateway) the pod's default route of a family; every other attachment's default
route of that family is removed from the pod namespace. Results are rewritten to match,
so network-status and the merged result say what the kernel has."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from cni.result import Result
from delegates.common import netlink_errors
from meta import status
from meta.model import Attachment

_DEFAULTS = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}


def apply(plan: Sequence[Attachment], results: list[Result], *, netns: str) -> list[Result]:
    decisions = status.default_route_owner(plan)
    if not decisions:
        return results
    from delegates.netlink import routes  # pyroute2 only when a pod asks for this

    updated = list(results)
    for decision in decisions:
        for index, attachment in enumerate(plan):
            if index == decision.owner:
                continue
            with netlink_errors(f"default-route: {attachment.network} ({attachment.ifname})"):
                for route in routes.list_routes(netns, family=decision.family, ifname=attachment.ifname):
                    if route.dst.prefixlen == 0:
                        routes.delete(netns, route)
            updated[index] = status.without_default_route(updated[index], family=decision.family)
        if decision.gateway is not None:
            owner = plan[decision.owner]
            with netlink_errors(f"default-route: {owner.network} ({owner.ifname})"):
                routes.replace(netns, routes.Route(
                    dst=_DEFAULTS[decision.family], gw=decision.gateway, ifname=owner.ifname,
                ))
            updated[decision.owner] = status.with_default_route(
                updated[decision.owner], family=decision.family, gateway=decision.gateway
            )
    return updated
