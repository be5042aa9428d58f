"""The two scripts `netplex install` writes for each console script: the launcher in the
CNI bin dir (POSIX sh, so a node without the right Python still gets a CNI error JSON
instead of an exec failure) and the entry script in the release that the launcher runs.

The launcher runs Python with `-I -S`: isolated (no PYTHON* variables, no user site, no
script directory on sys.path) and without site-packages, so only the release's own
library directory is importable, whatever else the node has installed."""

from __future__ import annotations

import json
import shlex

ERROR_CNI_VERSION = "1.0.0"  # the launcher cannot read stdin's version; every runtime reads 1.0.0 errors

LAUNCHER = """\
#!/bin/sh
# {name}: netplex {version}, installed by `netplex install`. Do not edit: the installer
# replaces this file whole on upgrade. It runs the release below with the node's own
# CPython {python_version} (netplex's compiled dependencies are built for that version).
python={python}
release={release}
if [ ! -x "$python" ]; then
    echo {missing_json}
    exit 1
fi
exec "$python" -I -S "$release/bin/{name}" "$@"
"""

ENTRY = '''\
"""{name}: the console script `{module}:{attr}`, as `netplex install` put it on this node."""
import os
import sys

sys.path[:0] = [os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")]
from {module} import {attr}  # noqa: E402

sys.exit({attr}())
'''

RELEASE_LINE = "release="


def launcher(*, name: str, version: str, python: str, python_version: str, release: str) -> str:
    """The sh launcher of console script `name`; `python` and `release` are node paths."""
    missing = {
        "cniVersion": ERROR_CNI_VERSION,
        "code": 999,
        "msg": f"{name}: {python} is missing on this node: netplex needs CPython {python_version} there",
        "details": "re-run `netplex install` (the netplex DaemonSet) after installing it, or pass --node-python",
    }
    return LAUNCHER.format(
        name=name,
        version=version,
        python=shlex.quote(python),
        python_version=python_version,
        release=shlex.quote(release),
        missing_json=shlex.quote(json.dumps(missing)),
    )


def entry(*, name: str, module: str, attr: str) -> str:
    """The Python entry script of console script `name` (`module:attr`)."""
    return ENTRY.format(name=name, module=module, attr=attr)


def release_of(launcher_text: str) -> str | None:
    """The release path a launcher runs (None when the text is not one of ours)."""
    for line in launcher_text.splitlines():
        if line.startswith(RELEASE_LINE):
            words = shlex.split(line[len(RELEASE_LINE):])
            return words[0] if len(words) == 1 else None
    return None
