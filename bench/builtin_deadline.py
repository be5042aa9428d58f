"""The price of bounding a built-in delegate (cni/invoke.py): the same trivial built-in
ADD called in the caller's thread and in the bounded worker thread, as a same-run ratio
and the added microseconds per call (a real bridge ADD takes milliseconds).

`python -m bench.builtin_deadline`; no root, no namespaces."""

from __future__ import annotations

import time
from collections.abc import Callable

from cni import invoke, skel

CALLS = 1000
ROUNDS = 5


def _best(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            fn()
        best = min(best, (time.perf_counter() - started) / CALLS)
    return best


def main() -> None:
    plugin = skel.Plugin(add=lambda args: {"cniVersion": "1.0.0"}, delete=lambda args: None, about="noop")
    args = skel.CmdArgs(command="ADD", container_id="c1", netns="/x", ifname="eth0", path=("/opt/cni/bin",),
                        stdin=b'{"cniVersion":"1.0.0","name":"n","type":"noop"}')
    inline = _best(lambda: invoke.invoke({"cniVersion": "1.0.0", "name": "n", "type": "noop"}, args,
                                         builtins=lambda _t: plugin))
    bounded = _best(lambda: invoke.invoke({"cniVersion": "1.0.0", "name": "n", "type": "noop"}, args,
                                          builtins=lambda _t: plugin, timeout=10))
    print(f"built-in ADD, unbounded: {inline * 1e6:.1f} us; bounded (worker thread): {bounded * 1e6:.1f} us; "
          f"ratio {bounded / inline:.2f}; added {(bounded - inline) * 1e6:.1f} us per call")


if __name__ == "__main__":
    main()
