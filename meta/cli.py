"""The human CLI of `netplex` (when CNI_COMMAND is not set): demo, validate, status,
version, and the commands that arrive with later work (install, daemon)."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from cni import version as cni_version


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="netplex",
        description="netplex: a Multus-compatible multi-network CNI meta-plugin. "
        "Run by a container runtime with CNI_COMMAND set; these are its human commands.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="two pods, three networks each, on this machine (root)")
    demo.add_argument("--keep", action="store_true", help="leave the demo's pods attached for a look")
    commands.add_parser("version", help="print netplex's version and the CNI versions it speaks")
    validate = commands.add_parser("validate", help="lint NADs, pod annotations and netplex configs")
    validate.add_argument("files", nargs="+", metavar="FILE")
    status = commands.add_parser("status", help="what netplex has attached on this node")
    status.add_argument("--pod", help="only this pod (namespace/name)")
    status.add_argument("--cni-dir", default="/var/lib/cni/netplex", help="netplex's cniDir")
    commands.add_parser("install", help="install netplex into a node's CNI directories")
    commands.add_parser("daemon", help="run the node daemon that the thin shim talks to")
    options = parser.parse_args(argv)

    if options.command == "version":
        print(f"netplex {_package_version()} (CNI {', '.join(cni_version.SUPPORTED_VERSIONS)})")
        return 0
    if options.command == "demo":
        from meta import demo as demo_module

        return demo_module.run(keep=options.keep)
    if options.command == "validate":
        from meta import validate as validate_module

        return validate_module.run(options.files)
    if options.command == "status":
        from meta import nodestatus

        return nodestatus.run(cni_dir=options.cni_dir, pod=options.pod)
    if options.command in ("install", "daemon"):
        print(f"netplex {options.command}: not built yet", file=sys.stderr)
        return 2
    parser.print_help()
    return 2


def _package_version() -> str:
    try:
        return metadata.version("netplex")
    except metadata.PackageNotFoundError:
        return "unknown"
