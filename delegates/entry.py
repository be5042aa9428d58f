"""Console-script entry points of the shipped delegates (`netplex-bridge`, ...).

Each answers VERSION from the standard-library skeleton and imports its plugin module
(msgspec models, pyroute2) only for real work."""

from __future__ import annotations

import sys

from cni import skel


def bridge() -> None:
    sys.exit(skel.run_lazy("delegates.bridge.plugin"))


def macvlan() -> None:
    sys.exit(skel.run_lazy("delegates.macvlan.plugin"))


def ipvlan() -> None:
    sys.exit(skel.run_lazy("delegates.ipvlan.plugin"))


def host_local() -> None:
    sys.exit(skel.run_lazy("delegates.ipam.host_local"))


def static() -> None:
    sys.exit(skel.run_lazy("delegates.ipam.static"))


def host_device() -> None:
    sys.exit(skel.run_lazy("delegates.hostdevice.plugin"))


def ipam() -> None:
    sys.exit(skel.run_lazy("delegates.ipam.cluster.plugin"))
