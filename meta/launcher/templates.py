"""The scripts `netplex install` writes for each console script.

With the release's own interpreter (the default), the launcher in the CNI bin dir is a
Python script whose `#!` line names that interpreter: the kernel starts it directly, with
no shell (a node may have none), no `site` and no editable-install hooks.

With `--node-python`, the launcher is POSIX sh, so a node without the right Python still
gets a CNI error JSON instead of an exec failure, and it runs the release's entry script.

Either way Python runs with `-I -S`: isolated (no PYTHON* variables, no user site, no
script directory on sys.path) and without site-packages, so only the release's own
library directory is importable, whatever else the node has installed."""

from __future__ import annotations

import ast
import json
import re
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

BUNDLED = """\
#!{python} -IS
# {name}: netplex {version}, installed by `netplex install`. Do not edit: the installer
# replaces this file whole on upgrade. The release's own interpreter runs it; the node
# provides nothing.
import sys

release = {release!r}
sys.path[:0] = [release + "/lib"]
from {module} import {attr}  # noqa: E402

sys.exit({attr}())
"""

RELEASE_LINE = "release="
_PY_RELEASE = re.compile(r"^release = (.+)$")
MAX_SHEBANG = 127  # bytes the kernel reads of a `#!` line before 5.1 (256 after)


def bundled_launcher(*, name: str, version: str, module: str, attr: str, release: str, python: str) -> str:
    """The Python launcher of console script `name` that its release's interpreter runs;
    `release` and `python` are node paths."""
    if len(f"#!{python} -IS".encode()) > MAX_SHEBANG or any(c.isspace() for c in python):
        raise ValueError(f"{python!r} cannot be a #! interpreter: keep the lib dir short and without spaces")
    return BUNDLED.format(name=name, version=version, module=module, attr=attr, release=release, python=python)


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
        found = _PY_RELEASE.match(line)
        if found is not None:
            try:
                value = ast.literal_eval(found.group(1))
            except (ValueError, SyntaxError):
                return None
            return value if isinstance(value, str) else None
        if line.startswith(RELEASE_LINE):
            words = shlex.split(line[len(RELEASE_LINE):])
            return words[0] if len(words) == 1 else None
    return None
