"""`netplex status`: what is attached on this node, read from the attachment cache; with
`--kernel`, each attachment also checked against its pod's namespace (meta.kerneldrift),
and the exit code is 1 when any drifted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meta import cache


def run(*, cni_dir: str, pod: str | None, kernel: bool = False) -> int:
    entries = [e for e in cache.list_entries(cni_dir) if pod is None or e.pod == pod]
    if not entries:
        print(f"no attachments recorded in {cni_dir}" + (f" for pod {pod}" if pod else ""))
        return 0 if pod is None else 1
    header = ("POD", "CONTAINER", "NETWORK", "IFNAME", "STATE", "IPS")
    rows: list[tuple[str, ...]] = [(*header, "KERNEL") if kernel else header]
    drift = False
    for entry in entries:
        found = _kernel_verdicts(entry) if kernel else []
        for index, attachment in enumerate(entry.attachments):
            row: tuple[str, ...] = (
                entry.pod,
                entry.container_id[:12],
                attachment.network,
                attachment.ifname,
                attachment.state,
                ",".join(_ips(attachment.result)) or "-",
            )
            if kernel:
                row = (*row, found[index])
                drift = drift or found[index] != "ok"
            rows.append(row)
    print(format_table(rows))
    if pod is not None:  # which MultiNetworkPolicies the daemon enforces on each interface
        from meta.policy import report

        policy_rows = report.rows(cni_dir, [e.container_id for e in entries])
        if policy_rows:
            print("\n" + format_table(policy_rows))
    return 1 if drift else 0


def _kernel_verdicts(entry: cache.CacheEntry) -> list[str]:
    from meta import kerneldrift

    return kerneldrift.verdicts(entry)


def format_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def _ips(result: dict[str, Any] | None) -> list[str]:
    if not result:
        return []
    return [str(ip.get("address", "")) for ip in result.get("ips", []) if isinstance(ip, dict)]
