"""The vm lane's gate: every test under tests/vm is marked `vm` and runs only inside the guest.

`python -m tools.vm.run` sets NETPLEX_IN_VM=1 and runs pytest as root under a real
kernel; anywhere else these tests skip, since this host lacks the kernel features they
exercise (ipvlan, 802.1q, dummy, bridge VLAN filtering).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SKIP_REASON = "runs only in the vm lane (make test-vm)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    in_vm = os.environ.get("NETPLEX_IN_VM") == "1"
    vm_items = [item for item in items if HERE in item.path.resolve().parents]
    if in_vm and vm_items and os.geteuid() != 0:
        raise pytest.UsageError(f"{len(vm_items)} vm tests need root inside the VM")
    for item in vm_items:
        item.add_marker(pytest.mark.vm)
        if not in_vm:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
