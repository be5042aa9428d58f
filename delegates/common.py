"""What the link delegates share: the MAC a runtime asks for, turning netlink failures into
CNI errors, and the deterministic names of host-side objects.

No netlink calls here; no Kubernetes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from cni.errors import CniError, Code
from cni.skel import CmdArgs
from delegates.netlink import errors as nlerrors

_MAC_RE = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")


def parse_mac(value: object, *, where: str) -> str:
    """A unicast MAC in canonical lowercase form; error 7 naming `where` otherwise."""
    if not isinstance(value, str) or not _MAC_RE.match(value):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: invalid MAC address {value!r}")
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{where}: {value!r} is a multicast MAC address")
    return mac


def requested_mac(
    runtime_config: Mapping[str, Any], conf_args: Mapping[str, Any] | None, args: CmdArgs,
    *, capabilities: Mapping[str, bool] | None = None,
) -> str | None:
    """The MAC asked for, as the reference plugins rank them (later sources win there):
    `runtimeConfig.mac` (capability "mac"), then `args.cni.mac`, then CNI_ARGS `MAC`."""
    if runtime_config.get("mac") and (capabilities is None or capabilities.get("mac", True)):
        return parse_mac(runtime_config["mac"], where="runtimeConfig.mac")
    cni = (conf_args or {}).get("cni") if isinstance(conf_args, Mapping) else None
    if isinstance(cni, Mapping) and cni.get("mac"):
        return parse_mac(cni["mac"], where="args.cni.mac")
    cni_args = args.cni_args
    if cni_args.get("MAC"):
        return parse_mac(cni_args["MAC"], where="CNI_ARGS MAC")
    return None


def host_veth_name(container_id: str, ifname: str, prefix: str = "veth") -> str:
    """A host-side name derived from the attachment, so DEL and GC can find it without
    state: `veth` + 11 hex digits of sha256(containerID/ifname) (15 characters)."""
    digest = hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()
    return f"{prefix}{digest[: 15 - len(prefix)]}"


@contextlib.contextmanager
def netlink_errors(what: str) -> Iterator[None]:
    """Translate netlink-layer failures into CNI errors (by type and errno, never text)."""
    try:
        yield
    except nlerrors.NetnsNotFound as exc:
        raise CniError(Code.INVALID_ENVIRONMENT, f"{what}: {exc}") from exc
    except nlerrors.KindNotSupported as exc:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{what}: {exc} (is the kernel module loaded?)") from exc
    except nlerrors.LinkNotFound as exc:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"{what}: {exc}") from exc
    except nlerrors.NetlinkFailure as exc:
        code = Code.INVALID_NETWORK_CONFIG if exc.errno in (errno.EINVAL, errno.ERANGE) else Code.INTERNAL
        raise CniError(code, f"{what}: {exc}") from exc
