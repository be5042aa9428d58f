"""The delegates run on every exec'd CNI call: their models are msgspec Structs, and
loading any of them must not pull in pydantic (about 110 ms per call)."""

from __future__ import annotations

import subprocess
import sys


def test_no_delegate_imports_pydantic() -> None:
    code = (
        "import sys\n"
        "import delegates.entry\n"
        "from delegates import registry\n"
        "assert all(registry.lookup(name) is not None for name in registry.BUILTIN_TYPES)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert out.strip() == "[]"
