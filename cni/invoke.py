"""Invoking another plugin: a built-in delegate in-process, or a binary found by type in
the CNI path, with the same inputs (env + config) and outputs (result or CniError).

`cni` never imports `delegates`: the caller hands a `Builtins` lookup (type -> Plugin).
Both paths give the same answers: the ADD/VERSION document as JSON values, None for the
other verbs, or a CniError with the plugin's code, message and details (a stray exception
is code 999 with the one-line message the skeleton would print). The deadline applies to
the exec path only: an in-process call cannot be cut short.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any

from cni import skel
from cni.errors import CniError, Code

log = logging.getLogger(__name__)

Builtins = Callable[[str], skel.Plugin | None]
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
_exec = {"root": ""}  # set_exec_root(): where exec'd plugins are chrooted ("" for nowhere)


def set_exec_root(path: str) -> None:
    """From now on, run every exec'd plugin chrooted into `path` (Multus's `chrootDir`: a
    daemon in a pod runs the node's plugins in the node's filesystem view); "" or "/"
    ends it. `find_plugin` looks for binaries there too."""
    _exec["root"] = path.rstrip("/") if path not in ("", "/") else ""


def find_plugin(plugin_type: str, path: tuple[str, ...] | list[str], *, root: str | None = None) -> str:
    """The executable for `plugin_type` in the first directory of `path` that has it
    (directories of the chroot `root`, default the exec root, when there is one)."""
    if not plugin_type or "/" in plugin_type or "\0" in plugin_type or plugin_type in {".", ".."}:
        raise CniError(Code.INVALID_NETWORK_CONFIG, f"type: invalid plugin type {plugin_type!r}")
    root = _exec["root"] if root is None else root
    for directory in path:
        candidate = os.path.join(directory, plugin_type)
        seen = os.path.join(root, candidate.lstrip("/")) if root else candidate
        if os.path.isfile(seen) and os.access(seen, os.X_OK):
            return candidate
    raise CniError(
        Code.INVALID_NETWORK_CONFIG,
        f"failed to find plugin {plugin_type!r} in path {list(path)}",
    )


def invoke(
    conf: Mapping[str, Any],
    args: skel.CmdArgs,
    *,
    builtins: Builtins | None = None,
    timeout: float | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """Run `args.command` of the plugin `conf["type"]` with `conf` as its stdin.

    Returns the parsed ADD/VERSION output (None for other commands); raises CniError with
    the plugin's own code. A deadline past `timeout` seconds is error 11.
    """
    plugin_type = str(conf.get("type", ""))
    stdin = json.dumps(conf).encode()
    call = args.replace(stdin=stdin)
    builtin = builtins(plugin_type) if builtins else None
    if builtin is not None:
        return _run_builtin(builtin, call)
    return exec_plugin(find_plugin(plugin_type, args.path), call, timeout=timeout, extra_env=extra_env)


def exec_plugin(
    binary: str,
    args: skel.CmdArgs,
    *,
    timeout: float | None = None,
    extra_env: Mapping[str, str] | None = None,
    chroot: str | None = None,
) -> dict[str, Any] | None:
    """Exec `binary` with the CNI env and `args.stdin`; the whole process group is killed
    when the deadline passes. With `chroot` (default: the exec root), `binary` is a path
    inside it, and so is the netns the plugin is handed."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CNI_")}
    env.update(extra_env or {})
    env.update(args.env())
    root = _exec["root"] if chroot is None else chroot.rstrip("/")
    if root and env.get("CNI_NETNS", "").startswith(root + "/"):
        env["CNI_NETNS"] = env["CNI_NETNS"][len(root):]  # as the plugin sees it from inside
    name = os.path.basename(binary)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [binary],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
            preexec_fn=_chrooter(root) if root else None,  # noqa: PLW1509
        )
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"failed to exec plugin {name!r}: {exc.strerror}") from exc
    try:
        out, err = proc.communicate(args.stdin, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise CniError(
            Code.TRY_AGAIN_LATER,
            f"plugin {name!r} {args.command} did not finish within {timeout:.1f}s",
        ) from exc
    except BaseException:
        _kill_group(proc)  # interrupted: leave no plugin running behind us
        raise
    log.debug("plugin %s %s exited %s in %.1f ms", name, args.command, proc.returncode,
              (time.monotonic() - started) * 1000)
    stderr_tail = err.decode(errors="replace").strip()[-2000:]
    if proc.returncode != 0:
        fallback = f"plugin {name!r} {args.command} failed with exit status {proc.returncode}"
        if stderr_tail:
            fallback += f": {stderr_tail.splitlines()[-1]}"
        try:
            doc = _parse_output(out, name)
        except CniError as bad_output:  # the failure matters more than its garbled report
            raise CniError(Code.INTERNAL, f"{fallback} (its output is not an error JSON)", bad_output.details) from None
        raise CniError.from_wire(doc, fallback=fallback)
    doc = _parse_output(out, name)
    if args.command in ("ADD", "VERSION"):
        if not isinstance(doc, dict):
            raise CniError(Code.DECODING_FAILURE, f"plugin {name!r} {args.command} printed no result")
        return doc
    return None


def _chrooter(root: str) -> Callable[[], None]:
    """What runs between fork and exec: chroot(2) and chdir(2) only, nothing that takes a
    lock, so it is safe in the daemon's threads."""

    def enter() -> None:
        os.chroot(root)
        os.chdir("/")

    return enter


def _run_builtin(plugin: skel.Plugin, args: skel.CmdArgs) -> dict[str, Any] | None:
    """The in-process twin of exec_plugin: same checks, same dispatch, same JSON out."""
    if args.command == "VERSION":
        out = io.StringIO()
        skel.run(plugin, environ=args.env(), stdin=io.BytesIO(args.stdin), stdout=out)
        parsed: dict[str, Any] = json.loads(out.getvalue())
        return parsed
    try:
        checked = skel.parse_env(args.env(), args.stdin)
        answer = skel.dispatch(plugin, checked)
        # A round trip through JSON, as the exec path has, so both return the same values.
        return json.loads(json.dumps(answer)) if answer is not None else None
    except CniError:
        raise
    except Exception as exc:  # what the skeleton would have printed as error 999
        log.exception("built-in plugin %s %s failed", plugin.about or "?", args.command)
        raise skel.internal_error(exc) from exc


def _parse_output(out: bytes, name: str) -> Any:
    if len(out) > MAX_OUTPUT_BYTES:
        raise CniError(Code.DECODING_FAILURE, f"plugin {name!r} printed more than {MAX_OUTPUT_BYTES} bytes")
    if not out.strip():
        return None
    try:
        return json.loads(out)
    except ValueError as exc:
        raise CniError(Code.DECODING_FAILURE, f"plugin {name!r} printed invalid JSON", str(exc)) from exc


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the plugin's whole process group (it was started in a session of its own),
    then reap it. A descendant that left the group and holds the pipes open is not waited
    for past a few seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
