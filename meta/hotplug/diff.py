"""The hot-plug diff: from the attachments a sandbox has (the cache) and the selections
its pod now asks for (resolved as ADD resolves them), which attachments to DEL and which
networks to ADD under which ifname. Pure; no I/O.

Matching keeps what is unchanged exactly as it is (same ifname, same address, no flap):
a selection matches an attachment of the same network with the same runtime arguments
(the selection's ips, mac, portMappings, ...) and, when the selection names an `interface`, that ifname;
without one, only an attachment whose name netplex generated (`netN`). Selections naming
an interface are matched first, so a generic one never takes the name a later one asks for.

Names for new attachments: an explicit `interface` wins (a clash with a kept attachment,
another new one or a foreign link refuses that one selection); otherwise `netN` with N
past the highest N in use, counting the attachments this edit removes, so a generated
name is never handed to another network while its owner still exists."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

GENERATED = re.compile(r"net(\d+)")


@dataclasses.dataclass(frozen=True)
class Have:
    """One attachment the sandbox has (a selection's, not the cluster network's)."""

    network: str
    ifname: str
    runtime_args: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Want:
    """One selection of the annotation, in its order."""

    network: str
    interface: str  # as the selection names it, or ""
    runtime_args: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Change:
    """What to do: `remove` indexes `have` (in the order to DEL them: reverse), `add`
    pairs an index of `want` with its ifname (annotation order), `refused` an index of
    `want` with why it cannot be added."""

    remove: tuple[int, ...] = ()
    add: tuple[tuple[int, str], ...] = ()
    refused: tuple[tuple[int, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.remove and not self.add and not self.refused


def diff(have: Sequence[Have], want: Sequence[Want], *, reserved: Collection[str] = ()) -> Change:
    """The change from `have` to `want`; `reserved` are names no new attachment may take
    (the cluster network's, defaultNetworks', links netplex did not make)."""
    matched: dict[int, int] = {}  # want index -> have index
    taken: set[int] = set()
    explicit_first = sorted(range(len(want)), key=lambda index: not want[index].interface)
    for w in explicit_first:
        for h, attachment in enumerate(have):
            if h not in taken and _matches(attachment, want[w]):
                matched[w] = h
                taken.add(h)
                break
    remove = tuple(h for h in reversed(range(len(have))) if h not in taken)
    in_use = {attachment.ifname for h, attachment in enumerate(have) if h in taken} | set(reserved)
    highest = max((_number(name) for name in [*(a.ifname for a in have), *reserved]), default=0)
    add: list[tuple[int, str]] = []
    refused: list[tuple[int, str]] = []
    explicit = {want[w].interface for w in range(len(want)) if w not in matched and want[w].interface}
    for w, wanted in enumerate(want):
        if w in matched:
            continue
        if wanted.interface:
            if wanted.interface in in_use:
                refused.append((w, f"interface {wanted.interface!r} is already in use in the pod"))
                continue
            name = wanted.interface
        else:
            highest += 1
            while f"net{highest}" in in_use or f"net{highest}" in explicit:
                highest += 1
            name = f"net{highest}"
        in_use.add(name)
        add.append((w, name))
    return Change(remove=remove, add=tuple(add), refused=tuple(refused))


def _matches(attachment: Have, wanted: Want) -> bool:
    if attachment.network != wanted.network or _canonical(attachment.runtime_args) != _canonical(wanted.runtime_args):
        return False
    if wanted.interface:
        return attachment.ifname == wanted.interface
    return GENERATED.fullmatch(attachment.ifname) is not None


def _number(ifname: str) -> int:
    found = GENERATED.fullmatch(ifname)
    return int(found.group(1)) if found else 0


def _canonical(args: Mapping[str, Any]) -> str:
    return json.dumps(args, sort_keys=True, default=str)
