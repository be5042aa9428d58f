"""Running nft inside a pod's network namespace: `nsenter --net=<netns> nft -j -f -`.

The daemon itself stays in the node's namespace; each transaction is one short child
process (nsenter setns()'s into the pod's netns and execs nft), so a batch of JSON
commands lands in that namespace atomically, all or nothing. Python 3.11 has no
`os.setns`, and entering a namespace in a thread of a multi-threaded daemon would be
unsafe anyway: a child is the clean way. No name or address is ever spliced into nft's
text syntax: everything goes as JSON.

Errors are `NftError` with nft's first line of stderr; a namespace that no longer exists
is `NetnsGone` (the pod went away: nothing left to enforce)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

from delegates.netlink.errors import NetnsNotFound
from meta.policy import libnft

TIMEOUT = 20.0
_NFT_CANDIDATES = ("/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft")
_NSENTER_CANDIDATES = ("/usr/bin/nsenter", "/bin/nsenter", "/usr/sbin/nsenter")


class NftError(RuntimeError):
    """nft refused a transaction (or could not run)."""


class NetnsGone(NftError):
    """The pod's network namespace does not exist any more."""


def apply(netns: str, commands: list[dict[str, Any]]) -> None:
    """Run `commands` (nft JSON) in `netns` as one transaction: through libnftables in a
    thread inside the namespace when the library loads (meta/policy/libnft.py), else the
    nft tool in a child."""
    if not commands:
        return
    document = json.dumps({"nftables": commands})
    if libnft.available():
        if not os.path.exists(netns):
            raise NetnsGone(f"network namespace {netns!r} is gone")
        try:
            libnft.run(netns, document)
        except (libnft.LibnftError, OSError, NetnsNotFound) as exc:
            if not os.path.exists(netns):
                raise NetnsGone(f"network namespace {netns!r} is gone") from exc
            raise NftError(f"nft in {netns!r}: {exc}") from exc
        return
    apply_in_child(netns, commands)


def apply_in_child(netns: str, commands: list[dict[str, Any]]) -> None:
    """`nsenter --net=<netns> nft -j -f -`: the same transaction, in a child process."""
    _run(netns, ["-j", "-f", "-"], stdin=json.dumps({"nftables": commands}))


def list_table(netns: str, family: str, table: str) -> dict[str, Any] | None:
    """`nft -j list table` in `netns`, parsed; None when the table does not exist."""
    try:
        out = _run(netns, ["-j", "list", "table", family, table])
    except NftError as err:
        if isinstance(err, NetnsGone) or "No such file or directory" not in str(err):
            raise
        return None
    doc: dict[str, Any] = json.loads(out or "{}")
    return doc


def _run(netns: str, argv: list[str], *, stdin: str | None = None) -> str:
    if not os.path.exists(netns):
        raise NetnsGone(f"network namespace {netns!r} is gone")
    command = [_tool("nsenter", _NSENTER_CANDIDATES), f"--net={netns}", _tool("nft", _NFT_CANDIDATES), *argv]
    try:
        proc = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NftError(f"nft in {netns!r} did not finish in {TIMEOUT:.0f}s") from exc
    except OSError as exc:
        raise NftError(f"cannot run nft in {netns!r}: {exc.strerror}") from exc
    if proc.returncode != 0:
        if not os.path.exists(netns):
            raise NetnsGone(f"network namespace {netns!r} is gone")
        reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0][:300]
        raise NftError(f"nft in {netns!r}: {reason}")
    return proc.stdout


def _tool(name: str, candidates: tuple[str, ...]) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise NftError(f"{name} is not installed: network policy needs it")
