"""The MAC spoof check (`macspoofchk`): frames entering the bridge from a pod's port must
carry the pod's MAC as their source, anything else is dropped.

One rule per attachment in netplex's `bridge netplex` table (base chain `prerouting`, hook
priority -300 like the reference plugin's), tagged like every netplex nft rule so DEL and
GC find it; removal is `masq.teardown(tag)`.
"""

from __future__ import annotations

from typing import Any

from delegates import masq

PRIORITY = -300


def setup(tag: str, *, port: str, mac: str) -> None:
    """Drop frames from bridge port `port` whose source MAC is not `mac`."""
    expr = [
        {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": port}},
        {"match": {"op": "!=", "left": {"payload": {"protocol": "ether", "field": "saddr"}}, "right": mac.lower()}},
        {"drop": None},
    ]
    commands: list[dict[str, Any]] = [
        {"add": {"table": {"family": masq.BRIDGE_FAMILY, "name": masq.TABLE}}},
        {
            "add": {
                "chain": {
                    "family": masq.BRIDGE_FAMILY,
                    "table": masq.TABLE,
                    "name": masq.BRIDGE_CHAIN,
                    "type": "filter",
                    "hook": "prerouting",
                    "prio": PRIORITY,
                    "policy": "accept",
                }
            }
        },
        {
            "add": {
                "rule": {
                    "family": masq.BRIDGE_FAMILY,
                    "table": masq.TABLE,
                    "chain": masq.BRIDGE_CHAIN,
                    "comment": tag,
                    "expr": expr,
                }
            }
        },
    ]
    masq.apply(commands, what=f"set up the MAC spoof check on {port!r}")
