"""The plugin skeleton: env + stdin -> one CNI command -> result or error JSON on stdout.

Standard library only, so VERSION answers without importing pydantic, pyroute2 or
kubernetes. Only `run` turns exceptions into error JSON: a CniError keeps its code,
anything else becomes code 999 with a one-line message (the traceback goes to the log).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import IO, Any, NamedTuple, Protocol

from cni import args as cni_args
from cni import logfile, version
from cni.errors import CniError, Code

log = logging.getLogger(__name__)

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
MAX_STDIN_BYTES = 4 * 1024 * 1024
MAX_IFNAME_LENGTH = 15
MAX_CONTAINER_ID_LENGTH = 256
MAX_ERROR_MESSAGE_LENGTH = 500
# CNI spec "Parameters": an alphanumeric, then alphanumerics, '_', '.' or '-'. The same
# rule holds for network names (section 1). Matched with fullmatch: '$' would accept "\n".
_ID_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
_IFNAME_FORBIDDEN = re.compile(r"[/:\s\x00]")
# Bytes lib/ctype.c classes as space: '\t'..'\r', ' ' and 0xA0 (Latin-1 no-break space).
_KERNEL_SPACE_BYTES = frozenset(b"\t\n\v\f\r \xa0")

# Which commands need which variable (libcni's skel, CNI spec "Parameters").
_REQUIRED: dict[str, tuple[str, ...]] = {
    "CNI_CONTAINERID": ("ADD", "DEL", "CHECK"),
    "CNI_NETNS": ("ADD", "CHECK"),
    "CNI_IFNAME": ("ADD", "DEL", "CHECK"),
    "CNI_PATH": ("ADD", "DEL", "CHECK"),
}

# The spec version that introduced each later verb.
_MINIMUM_VERSION = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}


class WireResult(Protocol):
    def to_wire(self, cni_version: str) -> dict[str, Any]: ...


AddResult = WireResult | Mapping[str, Any]


class CmdArgs(NamedTuple):
    """One CNI invocation, as the runtime gave it. (A NamedTuple, not a dataclass: every
    exec'd call imports this module, and `dataclasses` costs it `inspect` and generated
    code; msgspec is more than VERSION should load.)"""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: str = ""
    path: tuple[str, ...] = ()
    stdin: bytes = b""

    @property
    def cni_args(self) -> dict[str, str]:
        return cni_args.parse_cni_args(self.args)

    def env(self) -> dict[str, str]:
        """The CNI_* variables that describe this invocation (for exec'ing a plugin)."""
        return {
            "CNI_COMMAND": self.command,
            "CNI_CONTAINERID": self.container_id,
            "CNI_NETNS": self.netns,
            "CNI_IFNAME": self.ifname,
            "CNI_ARGS": self.args,
            "CNI_PATH": os.pathsep.join(self.path),
        }

    def replace(self, **changes: Any) -> CmdArgs:
        return self._replace(**changes)


class Plugin(NamedTuple):
    """A plugin's verbs. CHECK left None answers with an error saying it is not built;
    STATUS left None means always ready and GC left None means nothing to collect (both
    succeed, as in libcni's skel)."""

    add: Callable[[CmdArgs], AddResult]
    delete: Callable[[CmdArgs], None]
    check: Callable[[CmdArgs], None] | None = None
    status: Callable[[CmdArgs], None] | None = None
    gc: Callable[[CmdArgs], None] | None = None
    about: str = ""


def validate_container_id(container_id: str) -> None:
    """The spec's container ID rule (error 4 naming CNI_CONTAINERID)."""
    if not container_id:
        raise CniError(Code.INVALID_ENVIRONMENT, "CNI_CONTAINERID is required")
    if not _ID_RE.fullmatch(container_id) or len(container_id) > MAX_CONTAINER_ID_LENGTH:
        raise CniError(
            Code.INVALID_ENVIRONMENT,
            f"CNI_CONTAINERID {container_id[:80]!r} has invalid characters: "
            "want letters, digits, '_', '.', '-', starting with a letter or digit",
        )


def validate_ifname(ifname: str, *, variable: str = "CNI_IFNAME") -> None:
    """Linux's interface-name rule (the kernel's dev_valid_name), checked on the UTF-8
    bytes the kernel will see: not empty, not '.' or '..', at most 15 bytes (IFNAMSIZ - 1),
    no '/', ':', NUL or byte the kernel's isspace() takes for a space (which includes 0xA0,
    so some UTF-8 letters are refused too). Non-ASCII is allowed as UTF-8; a surrogate (a
    lone U+D800..U+DFFF, or U+DC80..U+DCFF from undecodable bytes) has no UTF-8 form and is
    refused, as are other control characters. Error 4 naming `variable`."""
    if not ifname:
        raise CniError(Code.INVALID_ENVIRONMENT, f"{variable} is required")
    shown = ascii(ifname[:40])
    try:
        encoded = ifname.encode("utf-8")
    except UnicodeEncodeError as exc:  # surrogates: no kernel name can hold them
        raise CniError(
            Code.INVALID_ENVIRONMENT, f"{variable} {shown} is not a valid interface name: not valid UTF-8"
        ) from exc
    if len(encoded) > MAX_IFNAME_LENGTH:
        raise CniError(Code.INVALID_ENVIRONMENT, f"{variable} {shown} is longer than 15 bytes")
    if (
        ifname in {".", ".."}
        or _IFNAME_FORBIDDEN.search(ifname)
        or any(byte in _KERNEL_SPACE_BYTES for byte in encoded)
        or any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in ifname)
    ):
        raise CniError(Code.INVALID_ENVIRONMENT, f"{variable} {shown} is not a valid interface name")


def validate_network_name(name: object) -> None:
    """The spec's network-name rule (error 7 naming `name`)."""
    if not isinstance(name, str) or not name:
        raise CniError(Code.INVALID_NETWORK_CONFIG, "name: missing network name")
    if not _ID_RE.fullmatch(name):
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"name: invalid characters in network name {name!r}")


def parse_env(environ: Mapping[str, str], stdin: bytes) -> CmdArgs:
    """Read the CNI_* variables, validating each for the command (error 4 names it)."""
    command = environ.get("CNI_COMMAND", "")
    if not command:
        raise CniError(Code.INVALID_ENVIRONMENT, "CNI_COMMAND is required")
    if command not in COMMANDS:
        raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_COMMAND {command[:40]!r} is not one of {list(COMMANDS)}")
    missing = [name for name, commands in _REQUIRED.items() if command in commands and not environ.get(name)]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise CniError(Code.INVALID_ENVIRONMENT, f"{', '.join(missing)} {verb} required for {command}")
    parsed = CmdArgs(
        command=command,
        container_id=environ.get("CNI_CONTAINERID", ""),
        netns=environ.get("CNI_NETNS", ""),
        ifname=environ.get("CNI_IFNAME", ""),
        args=environ.get("CNI_ARGS", ""),
        path=tuple(p for p in environ.get("CNI_PATH", "").split(os.pathsep) if p),
        stdin=stdin,
    )
    if command in ("ADD", "DEL", "CHECK"):
        validate_container_id(parsed.container_id)
        validate_ifname(parsed.ifname)
        if parsed.netns and (not parsed.netns.startswith("/") or "\0" in parsed.netns):
            raise CniError(Code.INVALID_ENVIRONMENT, f"CNI_NETNS {parsed.netns[:80]!r} is not an absolute path")
        parsed.cni_args  # noqa: B018 - validates the K=V syntax now, before any side effect
    return parsed


def load_json(stdin: bytes | str) -> dict[str, Any]:
    """The config on stdin as a JSON object (error 6 when it is not one)."""
    if len(stdin) > MAX_STDIN_BYTES:
        raise CniError(Code.DECODING_FAILURE, f"config is larger than {MAX_STDIN_BYTES} bytes")
    try:
        doc = json.loads(stdin or "null")
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise CniError(Code.DECODING_FAILURE, "config is not valid JSON", str(exc)[:MAX_ERROR_MESSAGE_LENGTH]) from exc
    if not isinstance(doc, dict):
        raise CniError(Code.DECODING_FAILURE, "config is not a JSON object")
    return doc


def key_any_case(doc: Mapping[str, Any], key: str) -> Any:
    """`doc[key]`, or the first key equal to it but for case (Go's encoding/json matches
    keys so, and the reference skeleton reads cniVersion with it); None when absent."""
    if key in doc:
        return doc[key]
    folded = key.lower()
    return next((value for name, value in doc.items() if isinstance(name, str) and name.lower() == folded), None)


def config_version(conf: Mapping[str, Any]) -> str:
    """The version to answer in for `conf`: negotiated from cniVersion / cniVersions."""
    raw_version = key_any_case(conf, "cniVersion")
    raw_versions = key_any_case(conf, "cniVersions")
    if raw_version is not None and not isinstance(raw_version, str):
        raise CniError(Code.INVALID_NETWORK_CONFIG, "cniVersion: must be a string")
    if raw_versions is not None and (
        not isinstance(raw_versions, list) or not all(isinstance(v, str) for v in raw_versions)
    ):
        raise CniError(Code.INVALID_NETWORK_CONFIG, "cniVersions: must be a list of strings")
    return version.negotiate(raw_version, raw_versions)


def dispatch(plugin: Plugin | Callable[[], Plugin], args: CmdArgs) -> dict[str, Any] | None:
    """Run one command; returns the ADD result (or VERSION answer) in the config's version.
    A plugin loader is called only once the config has passed the generic checks."""
    if args.command == "VERSION":
        return _version_answer(args.stdin)
    conf = load_json(args.stdin)
    cni_version = config_version(conf)
    validate_network_name(conf.get("name"))
    minimum = _MINIMUM_VERSION.get(args.command)
    if minimum and not version.at_least(cni_version, minimum):
        raise CniError(
            Code.INCOMPATIBLE_VERSION, f"config version {cni_version} does not allow {args.command}"
        )
    if not isinstance(plugin, Plugin):
        plugin = plugin()
    if args.command == "ADD":
        return to_wire(plugin.add(args), cni_version)
    if args.command == "DEL":
        plugin.delete(args)
        return None
    verb = {"CHECK": plugin.check, "STATUS": plugin.status, "GC": plugin.gc}[args.command]
    if verb is None:
        if args.command != "CHECK":
            # Like libcni's skel: no STATUS hook means ready, no GC hook means nothing to
            # collect (CNI 1.1: plugins should avoid failing GC).
            return None
        raise CniError(Code.INVALID_ENVIRONMENT, f"{plugin.about or 'plugin'}: {args.command} is not implemented")
    verb(args)
    return None


def to_wire(result: AddResult, cni_version: str) -> dict[str, Any]:
    """An ADD result as `cni_version` shapes it. A plain mapping is taken as already in that
    version unless it names another one, in which case it is converted."""
    if not isinstance(result, Mapping):
        return result.to_wire(cni_version)
    doc = dict(result)
    named = doc.get("cniVersion")
    if named is None or named == cni_version:
        return {**doc, "cniVersion": cni_version}
    from cni import result as cni_result  # pydantic: never on VERSION's path

    return cni_result.convert(doc, cni_version)


def internal_error(exc: BaseException) -> CniError:
    """A stray exception as the runtime sees it: code 999, one line, no traceback."""
    text = str(exc).strip()
    message = f"internal error: {type(exc).__name__}" + (f": {text}" if text else "")
    return CniError(Code.INTERNAL, message.splitlines()[0][:MAX_ERROR_MESSAGE_LENGTH])


def run(
    plugin: Plugin | Callable[[], Plugin],
    *,
    environ: Mapping[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """Serve one invocation; returns the exit code. `plugin` may be a loader, called only
    for commands other than VERSION so that VERSION stays standard-library only."""
    environ = os.environ if environ is None else environ
    out = sys.stdout if stdout is None else stdout
    raw = b""
    answer: dict[str, Any] | None
    answer_version = version.CURRENT_VERSION
    try:
        raw = _read_stdin(sys.stdin.buffer if stdin is None else stdin)
        answer_version = _peek_version(raw)
        args = parse_env(environ, raw)
        if args.command == "VERSION":
            answer = _version_answer(raw)
        else:
            _configure_logging(raw)
            answer = dispatch(plugin, args)
    except CniError as err:
        log.error("%s", err.msg)
        logfile.settle(err.code)
        _emit(out, err.to_wire(answer_version))
        return 1
    except Exception as exc:  # the one place stray exceptions become error 999
        log.exception("internal error")
        logfile.settle(None)
        _emit(out, internal_error(exc).to_wire(answer_version))
        return 1
    logfile.settle(None)
    if answer is not None:
        _emit(out, answer)
    return 0


def run_plugin(
    *,
    add: Callable[[CmdArgs], AddResult],
    delete: Callable[[CmdArgs], None],
    check: Callable[[CmdArgs], None] | None = None,
    status: Callable[[CmdArgs], None] | None = None,
    gc: Callable[[CmdArgs], None] | None = None,
    about: str = "",
    environ: Mapping[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
) -> int:
    plugin = Plugin(add=add, delete=delete, check=check, status=status, gc=gc, about=about)
    return run(plugin, environ=environ, stdin=stdin, stdout=stdout)


def run_lazy(module: str, attribute: str = "PLUGIN") -> int:
    """Console-script entry: answer VERSION from here, import `module` only for real work."""

    def load() -> Plugin:
        plugin = getattr(importlib.import_module(module), attribute)
        if not isinstance(plugin, Plugin):
            raise TypeError(f"{module}.{attribute} is not a cni.skel.Plugin")
        return plugin

    return run(load)


def _version_answer(stdin: bytes) -> dict[str, Any]:
    # VERSION must never fail on a runtime's dummy values (podman sends CNI_NETNS=dummy).
    return version.version_info(_peek_version(stdin, default=""))


def _read_stdin(stream: IO[bytes]) -> bytes:
    try:
        return stream.read(MAX_STDIN_BYTES + 1)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"failed to read the config from stdin: {exc.strerror or exc}") from exc


def _parse_quietly(raw: bytes) -> Any:
    """`raw` as JSON, or None when it is none (never raises: used before validation)."""
    if len(raw) > MAX_STDIN_BYTES or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _peek_version(raw: bytes, default: str = version.CURRENT_VERSION) -> str:
    doc = _parse_quietly(raw)
    found = key_any_case(doc, "cniVersion") if isinstance(doc, dict) else None
    return found if isinstance(found, str) and version.is_supported(found) else default


def _emit(out: IO[str], doc: Mapping[str, Any]) -> None:
    out.write(json.dumps(doc))
    out.write("\n")
    out.flush()


_configured = False


def _configure_logging(raw: bytes) -> None:
    """Handlers once: stderr, plus the config's `logFile` when it names one."""
    global _configured  # noqa: PLW0603 - once per process, like logging.basicConfig
    if _configured:
        return
    _configured = True
    doc = _parse_quietly(raw)
    configure_logging(doc if isinstance(doc, dict) else {})


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    conf: Mapping[str, Any], *, default_level: str = "warning", log_format: str = LOG_FORMAT
) -> None:
    """Root handlers from a config's `logLevel`, `logToStderr` and `logFile` (Multus's
    keys and levels: `panic` is critical, `verbose` is debug)."""
    level_name = str(conf.get("logLevel") or default_level).upper()
    level = {"PANIC": "CRITICAL", "VERBOSE": "DEBUG"}.get(level_name, level_name)
    root = logging.getLogger()
    root.setLevel(getattr(logging, level, logging.WARNING))
    fmt = logging.Formatter(log_format)
    if conf.get("logToStderr", True) is not False:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(fmt)
        root.addHandler(stderr)
    log_file = conf.get("logFile")
    if isinstance(log_file, str) and log_file.startswith("/") and "\0" not in log_file:
        options = conf.get("logOptions")

        def opener() -> logging.Handler:
            from cni import logrotate  # Multus's logOptions rotation; imported only for a logFile

            return logrotate.file_handler(log_file, options)

        handler = logfile.DeferredFileHandler(log_file, opener)
        handler.setFormatter(fmt)
        root.addHandler(handler)


accept_log_file = logfile.accept  # the config passed: its logFile may be created now
