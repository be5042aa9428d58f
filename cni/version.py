"""CNI versions: what netplex speaks, comparison and negotiation. Standard library only."""

from __future__ import annotations

from collections.abc import Iterable

from cni.errors import CniError, Code

SUPPORTED_VERSIONS: tuple[str, ...] = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT_VERSION = "1.1.0"
# A config that names no version is read as 0.1.0/0.2.0 by libcni; we speak neither.
IMPLICIT_VERSION = "0.2.0"


def parse(version: str) -> tuple[int, int, int]:
    """'1.0.0' -> (1, 0, 0); raises CniError(INCOMPATIBLE_VERSION) on anything else."""
    parts = version.split(".")
    if len(parts) != 3 or not all(part.isdigit() and len(part) < 6 for part in parts):
        raise CniError(Code.INCOMPATIBLE_VERSION, f"invalid cniVersion {version!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def at_least(version: str, minimum: str) -> bool:
    """`version` >= `minimum`; either unparsable is error 1."""
    return parse(version) >= parse(minimum)


def is_supported(version: str) -> bool:
    return version in SUPPORTED_VERSIONS


def require_supported(version: str) -> str:
    """Return `version`, or raise the spec's error 1 when netplex does not speak it."""
    if not is_supported(version):
        raise CniError(
            Code.INCOMPATIBLE_VERSION,
            f"incompatible CNI versions: config is {version!r}, "
            f"plugin supports {list(SUPPORTED_VERSIONS)}",
        )
    return version


def negotiate(cni_version: str | None, cni_versions: Iterable[str] | None = None) -> str:
    """The version to speak for a config (CNI 1.1 "Version considerations").

    With `cniVersions`, the highest version netplex speaks among `cniVersions` and
    `cniVersion` together, as libcni picks it; without, `cniVersion` itself. Raises error 1
    when netplex speaks none of them."""
    listed = [v for v in (cni_versions or ()) if isinstance(v, str)]
    if cni_versions is not None and listed:
        candidates = [v for v in [*listed, cni_version or ""] if is_supported(v)]
        if candidates:
            return max(candidates, key=parse)
        if not cni_version:
            raise CniError(
                Code.INCOMPATIBLE_VERSION,
                f"incompatible CNI versions: none of cniVersions {listed} is supported, "
                f"plugin supports {list(SUPPORTED_VERSIONS)}",
            )
    return require_supported(cni_version or IMPLICIT_VERSION)


def version_info(requested: str | None = None) -> dict[str, object]:
    """The VERSION answer: the spec's `cniVersion` + `supportedVersions` document."""
    answer = requested if requested and is_supported(requested) else CURRENT_VERSION
    return {"cniVersion": answer, "supportedVersions": list(SUPPORTED_VERSIONS)}
