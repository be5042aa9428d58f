"""The fuzz lane: hypothesis property tests of every parser a runtime or a pod author can
reach. The property is the same for all: an input either parses or is refused with a
CniError carrying a spec code (never 999, never another exception).

Two profiles, chosen by NETPLEX_FUZZ_PROFILE:
- `ci` (the default): NETPLEX_FUZZ_EXAMPLES (default 2,000) examples per target,
  derandomized so a CI run is repeatable; each target takes a few seconds (about two
  minutes of CPU for the lane).
- `long` (`make fuzz`): NETPLEX_FUZZ_EXAMPLES (default 100,000) examples per target,
  random seeds, no example database. NETPLEX_FUZZ_PROGRESS=FILE appends counts as it goes.
At the end of the session every target's count of examples run and of non-CNI errors is
printed (the figures `make fuzz` reports)."""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings

from cni.errors import CniError

PROFILE = os.environ.get("NETPLEX_FUZZ_PROFILE", "ci")
DEFAULT_EXAMPLES = {"ci": 2000, "long": 100_000}
EXAMPLES = int(os.environ.get("NETPLEX_FUZZ_EXAMPLES") or DEFAULT_EXAMPLES.get(PROFILE, 2000))
PROGRESS = os.environ.get("NETPLEX_FUZZ_PROGRESS", "")  # a file a long run appends counts to
# The spec's well-known codes a parser may answer with (999 would be a stray exception).
SPEC_CODES = frozenset({1, 2, 3, 4, 5, 6, 7, 11, 50, 51})

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=PROFILE != "long",
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

RAN: collections.Counter[str] = collections.Counter()
REFUSED: collections.Counter[str] = collections.Counter()


def holds(target: str, parse: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run one example of `target`: `parse(*args)` returns or raises a spec-coded CniError."""
    RAN[target] += 1
    if PROGRESS and RAN[target] % 5000 == 0:  # a long run reports as it goes
        with open(PROGRESS, "a", encoding="utf-8") as out:
            out.write(f"{target}: {RAN[target]} examples, {REFUSED[target]} refused\n")
    try:
        parse(*args, **kwargs)
    except CniError as err:
        REFUSED[target] += 1
        assert err.code in SPEC_CODES, f"{target}: code {err.code}: {err.msg}"
        assert isinstance(err.msg, str) and err.msg, f"{target}: empty message"
        err.to_wire("1.0.0")  # the error must also serialise as the runtime will see it


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RAN:
        return
    terminalreporter.section(f"fuzz ({PROFILE} profile, up to {EXAMPLES} examples per target)")
    for target in sorted(RAN):
        terminalreporter.write_line(
            f"{target:32} {RAN[target]:>9} examples  {REFUSED[target]:>9} refused with a CNI error"
        )
    terminalreporter.write_line(f"{'total':32} {sum(RAN.values()):>9} examples")
