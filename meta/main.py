"""The `netplex` executable: the CNI meta-plugin when CNI_COMMAND is set, else the CLI.

The CNI path imports only the standard-library skeleton until it knows the command is
more than VERSION; the CLI's modules are never imported on the CNI path."""

from __future__ import annotations

import os
import sys


def main() -> None:
    if os.environ.get("CNI_COMMAND"):
        from cni import skel

        sys.exit(skel.run_lazy("meta.plugin"))
    from meta import cli

    sys.exit(cli.main(sys.argv[1:]))
