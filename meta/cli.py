"""The human CLI of `netplex` (when CNI_COMMAND is not set): demo, install, validate,
status, version, daemon and probe."""

from __future__ import annotations

import argparse
import dataclasses
from importlib import metadata
from typing import Any

from cni import version as cni_version
from meta.node import probe


def main(argv: list[str]) -> int:
    options = parser().parse_args(argv)
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

        return nodestatus.run(cni_dir=options.cni_dir, pod=options.pod, kernel=options.kernel)
    if options.command == "install":
        return _install(options)
    if options.command == "daemon":
        from meta import daemon as daemon_module

        return daemon_module.main(["--config", options.config])
    if options.command == "probe":
        return probe.run(options.check, socket_path=options.socket, timeout=options.timeout)
    parser().print_help()
    return 2


def parser() -> argparse.ArgumentParser:
    """The whole command line (the DaemonSet's arguments are tested against it)."""
    root = argparse.ArgumentParser(
        prog="netplex",
        description="netplex: a Multus-compatible multi-network CNI meta-plugin. "
        "Run by a container runtime with CNI_COMMAND set; these are its human commands.",
    )
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="two pods, three networks each, on this machine (root)")
    demo.add_argument("--keep", action="store_true", help="leave the demo's pods attached for a look")
    commands.add_parser("version", help="print netplex's version and the CNI versions it speaks")
    validate = commands.add_parser("validate", help="lint NADs, pod annotations and netplex configs")
    validate.add_argument("files", nargs="+", metavar="FILE")
    status = commands.add_parser("status", help="what netplex has attached on this node")
    status.add_argument("--pod", help="only this pod (namespace/name)")
    status.add_argument("--cni-dir", default="/var/lib/cni/netplex", help="netplex's cniDir")
    status.add_argument("--kernel", action="store_true",
                        help="compare with each pod's netns: flag interfaces gone or renamed (exit 1 on drift)")
    _add_install(commands)
    daemon = commands.add_parser("daemon", help="run the node daemon that the thin shim talks to")
    daemon.add_argument("--config", required=True, metavar="FILE", help="the daemon's JSON config")
    probe.add_parser(commands)
    return root


def _add_install(commands: Any) -> None:
    # Defaults live in meta.install.InstallOptions: options not given are left out here,
    # so `netplex version` (a probe) does not import the installer.
    parser = commands.add_parser(
        "install",
        help="install netplex on a node and keep its CNI config current",
        argument_default=argparse.SUPPRESS,
        description="Copy netplex's runtime and launchers into the node's CNI bin dir and write "
        "00-netplex.conflist around the primary CNI config, then keep both current (until SIGTERM, "
        "unless --once). Directories are as this process sees them; the node's / is at --host-root.",
    )
    option = parser.add_argument
    option("--cni-bin-dir", help="the node's CNI bin dir (default /host/opt/cni/bin)")
    option("--cni-conf-dir", help="the node's CNI conf dir (default /host/etc/cni/net.d)")
    option("--host-root", help="where the node's / is mounted (default /host; / installs in place)")
    option("--lib-dir", help="where releases of the runtime go (default /host/opt/netplex)")
    option("--node-python", metavar="PATH",
           help="run on the node's own CPython (a node path, or 'auto': the first python3.11) instead of the "
           "interpreter the release carries (default)")
    option("--readiness-indicator-file", metavar="F",
           help="a node path: wait for it before writing the config; the plugin waits for it too")
    option("--daemon-socket", metavar="PATH", help="a node path: the plugin forwards to `netplex daemon` there")
    option("--kubeconfig-out", metavar="PATH",
           help="where to write the plugin's kubeconfig (default: netplex.d/netplex.kubeconfig in the conf dir "
           "when running in a pod; 'none' on a node without Kubernetes)")
    option("--service-account-dir", help=argparse.SUPPRESS)
    option("--primary-config", metavar="NAME",
           help="the primary config's file name (default: the alphabetically first in the conf dir)")
    option("--cni-version", help="the conflist's cniVersion (default: the primary's, else 1.0.0)")
    option("--config", dest="config_file", metavar="FILE",
           help="a JSON object of netplex config keys to add (the ConfigMap), e.g. namespaceIsolation")
    option("--once", action="store_true", help="install and write the config once, then exit")
    option("--interval", type=float, help="seconds between checks for changes (default 2)")
    option("--timeout", type=float,
           help="with --once: seconds to wait for the readiness file and the primary config (default 120)")


def _install(options: argparse.Namespace) -> int:
    import logging

    from meta import install

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    fields = {field.name for field in dataclasses.fields(install.InstallOptions)}
    given = {key: value for key, value in vars(options).items() if key in fields}
    return install.run(install.InstallOptions(**given))


def _package_version() -> str:
    try:
        return metadata.version("netplex")
    except metadata.PackageNotFoundError:
        return "unknown"
