"""CNI_ARGS: the runtime's `K=V;K=V` string (CNI spec, "Parameters"). Standard library only."""

from __future__ import annotations

from cni.errors import CniError, Code

MAX_ARGS_LENGTH = 64 * 1024


def parse_cni_args(raw: str) -> dict[str, str]:
    """Parse `K=V;K=V` into a dict; a pair without `=` or without a key is error 4 naming
    CNI_ARGS.

    More lenient than libcni's LoadArgs, which refuses both: empty segments (a trailing
    `;`) are skipped and a value may contain '='. A repeated key keeps its last value.
    """
    if len(raw) > MAX_ARGS_LENGTH:
        raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_ARGS is longer than {MAX_ARGS_LENGTH} bytes")
    pairs: dict[str, str] = {}
    for segment in raw.split(";"):
        if not segment:
            continue
        key, sep, value = segment.partition("=")
        if not sep or not key:
            raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_ARGS: invalid pair {segment!r}, want KEY=VALUE")
        pairs[key] = value
    return pairs


def ignore_unknown(pairs: dict[str, str]) -> bool:
    """The `IgnoreUnknown` flag: libcni accepts 1 or true (any case); we also take t."""
    return pairs.get("IgnoreUnknown", "").lower() in {"1", "true", "t"}


def check_known(pairs: dict[str, str], known: set[str]) -> None:
    """Reject keys a plugin does not know, unless IgnoreUnknown is set (as libcni's LoadArgs)."""
    if ignore_unknown(pairs):
        return
    unknown = sorted(set(pairs) - known - {"IgnoreUnknown"})
    if unknown:
        raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_ARGS: unknown key {unknown[0]!r}")


def format_cni_args(pairs: dict[str, str]) -> str:
    """The inverse of parse_cni_args for keys without '=' or ';' and values without ';'."""
    return ";".join(f"{key}={value}" for key, value in pairs.items())
