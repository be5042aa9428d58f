"""Where the attachment cache keeps one sandbox's record: standard library only, so the
`netplex` entry point can answer a DEL with nothing recorded without importing the
meta-plugin (containerd's RemovePodSandbox DEL always finds nothing)."""

from __future__ import annotations

import os

from cni import skel

DEFAULT_CNI_DIR = "/var/lib/cni/netplex"
DEFAULT_MULTUS_CACHE_DIR = "/var/lib/cni/multus"  # Multus's cniDir: sandboxes it attached


def path_for(cni_dir: str, container_id: str, ifname: str) -> str:
    """Named from validated identifiers only: no traversal through IDs or ifnames."""
    skel.validate_container_id(container_id)
    skel.validate_ifname(ifname)
    # "a-b" + "c" and "a" + "b-c" must not share a file: an ifname with "-" uses "@".
    separator = "@" if "-" in ifname else "-"
    return os.path.join(cni_dir, "cache", f"{container_id}{separator}{ifname}.json")


def surely_absent(cni_dir: str, container_id: str, ifname: str) -> bool:
    """True only when the sandbox's record certainly does not exist: its file is missing
    and the cache dir is a directory or missing. A cniDir that is a file (/dev/null) or
    cannot be searched is not "nothing recorded": the full DEL reports it (error 5)."""
    path = path_for(cni_dir, container_id, ifname)
    try:
        os.stat(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False  # ENOTDIR, EACCES, ...: an I/O problem, not an absent record
    else:
        return False
    for directory in (os.path.dirname(path), cni_dir):
        try:
            if not os.path.isdir(directory) and os.path.lexists(directory):
                return False
        except OSError:
            return False
    return True
