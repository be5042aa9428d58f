"""Per-attachment nftables rules on the node: IP masquerade (`ipMasq`) and the nft plumbing
that the MAC spoof check shares.

netplex keeps its own tables, `inet netplex` and `bridge netplex`, with one base chain each,
and never touches anyone else's. Every rule carries a comment, the attachment's *tag*
(`netplex <network> <containerID>/<ifname>`), so DEL removes exactly that attachment's
rules and GC removes those of attachments the runtime no longer knows, without any state
file. Rules are written as JSON through the `nft` tool (one atomic transaction per call),
so no name or address is ever spliced into nft's text syntax.

Masquerade follows the reference plugins: traffic from the pod's address leaving its own
subnet is masqueraded, except to multicast (224.0.0.0/4, ff00::/8). No netlink here.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cni.errors import CniError, Code

log = logging.getLogger(__name__)

TABLE = "netplex"
NAT_FAMILY = "inet"
NAT_CHAIN = "postrouting"
BRIDGE_FAMILY = "bridge"
BRIDGE_CHAIN = "prerouting"
TAG_PREFIX = "netplex"
MAX_TAG = 120  # nft keeps at most 127 characters of a comment
_PLAIN = re.compile(r"^[A-Za-z0-9_.\-]+$")
_NFT_CANDIDATES = ("/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft")
_TIMEOUT = 30.0

Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface


# --- tags ---------------------------------------------------------------------------------


def network_part(network: str) -> str:
    """The network's part of a tag: its name, or a hash of a long or unusual one."""
    if len(network) <= 48 and _PLAIN.match(network):
        return network
    return "#" + hashlib.sha256(network.encode()).hexdigest()[:16]


def attachment_tag(network: str, container_id: str, ifname: str) -> str:
    """The comment every rule of one attachment carries: deterministic, at most 120 chars."""
    head = f"{TAG_PREFIX} {network_part(network)} "
    plain = f"{container_id}/{ifname}"
    if _PLAIN.match(container_id) and _PLAIN.match(ifname) and len(head) + len(plain) <= MAX_TAG:
        return head + plain
    return head + "#" + hashlib.sha256(plain.encode()).hexdigest()[:24]


def _network_of(tag: str) -> str | None:
    parts = tag.split(" ")
    return parts[1] if len(parts) == 3 and parts[0] == TAG_PREFIX else None


# --- masquerade ---------------------------------------------------------------------------


def setup_masquerade(tag: str, addresses: Sequence[Address]) -> None:
    """Masquerade what each address sends outside its subnet; one transaction, all or none."""
    if not addresses:
        return
    commands: list[dict[str, Any]] = [*_nat_base()]
    for address in addresses:
        proto = "ip" if address.version == 4 else "ip6"
        multicast = "224.0.0.0/4" if address.version == 4 else "ff00::/8"
        keep = [_prefix(address.network), _prefix(ipaddress.ip_network(multicast))]
        expr = [
            _match(proto, "saddr", "==", str(address.ip)),
            _match(proto, "daddr", "!=", {"set": keep}),
            {"masquerade": None},
        ]
        commands.append(
            {"add": {"rule": {"family": NAT_FAMILY, "table": TABLE, "chain": NAT_CHAIN, "comment": tag, "expr": expr}}}
        )
    apply(commands, what="set up masquerade")


def _nat_base() -> list[dict[str, Any]]:
    return [
        {"add": {"table": {"family": NAT_FAMILY, "name": TABLE}}},
        {
            "add": {
                "chain": {
                    "family": NAT_FAMILY,
                    "table": TABLE,
                    "name": NAT_CHAIN,
                    "type": "nat",
                    "hook": "postrouting",
                    "prio": 100,
                    "policy": "accept",
                }
            }
        },
    ]


def _prefix(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> dict[str, Any]:
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


def _match(proto: str, field: str, op: str, right: Any) -> dict[str, Any]:
    return {"match": {"op": op, "left": {"payload": {"protocol": proto, "field": field}}, "right": right}}


# --- removing -----------------------------------------------------------------------------


def teardown(tag: str) -> int:
    """Remove every netplex rule carrying `tag` (masquerade and spoof check); returns how
    many. Rules or tables already gone are success."""
    return _delete_where(lambda comment: comment == tag, what=f"remove rules of {tag!r}")


def gc(network: str, valid_tags: Iterable[str]) -> int:
    """Remove the rules of `network` whose tag is not in `valid_tags`; returns how many."""
    keep = set(valid_tags)
    mine = network_part(network)
    return _delete_where(
        lambda comment: _network_of(comment) == mine and comment not in keep,
        what=f"collect stale rules of network {network!r}",
    )


def tagged_rules() -> list[dict[str, Any]]:
    """Every rule in netplex's tables, as `nft -j` lists them (family, chain, handle, comment)."""
    rules: list[dict[str, Any]] = []
    for family in _our_tables():
        doc = _run(["-j", "list", "table", family, TABLE], what=f"list table {family} {TABLE}")
        for item in json.loads(doc or "{}").get("nftables", []):
            rule = item.get("rule")
            if isinstance(rule, dict):
                rules.append(rule)
    return rules


def _delete_where(select: Callable[[str], bool], *, what: str) -> int:
    if not available():
        return 0  # without nft no rule can have been made
    for attempt in (1, 2):
        doomed = [rule for rule in tagged_rules() if select(str(rule.get("comment", "")))]
        if not doomed:
            return 0
        commands = [
            {
                "delete": {
                    "rule": {"family": r["family"], "table": r["table"], "chain": r["chain"], "handle": r["handle"]}
                }
            }
            for r in doomed
        ]
        try:
            apply(commands, what=what)
        except CniError:
            if attempt == 2:
                raise
            continue  # a concurrent DEL took some of them first: look again
        return len(doomed)
    return 0


def _our_tables() -> list[str]:
    """The families in which a `netplex` table exists."""
    doc = _run(["-j", "list", "tables"], what="list nftables tables")
    families = []
    for item in json.loads(doc or "{}").get("nftables", []):
        table = item.get("table")
        if isinstance(table, dict) and table.get("name") == TABLE:
            families.append(str(table.get("family")))
    return sorted(families)


# --- running nft --------------------------------------------------------------------------


def apply(commands: list[dict[str, Any]], *, what: str) -> None:
    """Run `commands` (nft JSON) as one atomic transaction."""
    _run(["-j", "-f", "-"], what=what, stdin=json.dumps({"nftables": commands}))


def nft_binary() -> str:
    """The `nft` executable: on PATH, else the usual sbin paths (runtimes pass a thin PATH)."""
    import shutil  # ipMasq only: not on every call's path

    found = shutil.which("nft")
    if found:
        return found
    for candidate in _NFT_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise CniError(Code.INTERNAL, "nft is not installed: ipMasq and macspoofchk need the nftables tool")


def _run(argv: list[str], *, what: str, stdin: str | None = None) -> str:
    binary = nft_binary()
    try:
        proc = subprocess.run(
            [binary, *argv], input=stdin, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise CniError(Code.TRY_AGAIN_LATER, f"failed to {what}: nft did not finish in {_TIMEOUT:.0f}s") from exc
    except OSError as exc:
        raise CniError(Code.INTERNAL, f"failed to {what}: cannot run nft: {exc.strerror}") from exc
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0][:300]
        raise CniError(Code.INTERNAL, f"failed to {what}: nft: {reason}", proc.stderr[-2000:])
    return proc.stdout


def available() -> bool:
    """True when the nft tool can be found."""
    with contextlib.suppress(CniError):
        nft_binary()
        return True
    return False
