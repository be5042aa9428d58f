"""Invoking another plugin: a built-in delegate in-process, or a binary found by type in
the CNI path, with the same inputs (env + config) and outputs (result or CniError).

`cni` never imports `delegates`: the caller hands a `Builtins` lookup (type -> Plugin).
Both paths give the same answers: the ADD/VERSION document as JSON values, None for the
other verbs, or a CniError with the plugin's code, message and details (a stray exception
is code 999 with the one-line message the skeleton would print).

Deadlines bound both paths. An exec'd plugin's whole process group is killed when its
time is up. A built-in runs in a worker thread of its own; when its time is up the caller
gets error 11 at once and the thread is abandoned (Python cannot kill a thread): it is
counted (`abandoned_steps`, the `on_abandon` hooks) and logged, and should the abandoned
ADD still finish, its DEL runs right after in that thread, so nothing it made outlives
the caller's rollback. The deadline is also ambient (`deadline_scope`): every plugin a
built-in execs in turn (its IPAM) gets no more than what is left of it.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cni import skel
from cni.errors import CniError, Code

log = logging.getLogger(__name__)

Builtins = Callable[[str], skel.Plugin | None]
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
_exec = {"root": ""}  # set_exec_root(): where exec'd plugins are chrooted ("" for nowhere)

# The monotonic time by which the current request must be done (None: unbounded).
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("cni_invoke_deadline", default=None)
_abandoned_lock = threading.Lock()
_abandoned = [0]  # a list, so the counter is updated without a `global`
# Called with (plugin type, command) each time a built-in step is abandoned (metrics).
on_abandon: list[Callable[[str, str], None]] = []


@contextlib.contextmanager
def deadline_scope(deadline: float | None) -> Iterator[None]:
    """Make `deadline` (time.monotonic) the ambient bound of every invoke in this context;
    an enclosing, earlier deadline stays in force."""
    current = _deadline.get()
    bound = deadline if current is None or (deadline is not None and deadline < current) else current
    token = _deadline.set(bound)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextlib.contextmanager
def own_deadline() -> Iterator[None]:
    """Drop the ambient deadline for this context: a rollback or DEL that runs after an
    ADD ran out of time must still get its own time (each step keeps its timeout)."""
    token = _deadline.set(None)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining(timeout: float | None = None) -> float | None:
    """Seconds left: the lesser of `timeout` and the ambient deadline (None: unbounded)."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = max(0.0, deadline - time.monotonic())
    return left if timeout is None else min(timeout, left)


def abandoned_steps() -> int:
    """How many built-in steps this process gave up waiting for."""
    return _abandoned[0]


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
        return run_builtin_bounded(builtin, call, timeout=remaining(timeout), plugin_type=plugin_type)
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
    timeout = remaining(timeout)
    if timeout is not None and timeout <= 0:
        raise CniError(Code.TRY_AGAIN_LATER, f"plugin {os.path.basename(binary)!r} {args.command}: the deadline passed")
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


def run_builtin_bounded(
    plugin: skel.Plugin, args: skel.CmdArgs, *, timeout: float | None, plugin_type: str = ""
) -> dict[str, Any] | None:
    """A built-in's verb within `timeout` seconds (None: in this thread, unbounded).

    It runs in a worker thread under the deadline (so the plugins it execs are bounded
    too); past it, error 11 and the thread is abandoned (see the module docstring)."""
    if timeout is None or args.command == "VERSION":
        return _run_builtin(plugin, args)
    if timeout <= 0:
        raise CniError(Code.TRY_AGAIN_LATER, f"built-in plugin {plugin_type!r} {args.command}: the deadline passed")
    step = _Step(plugin, args, deadline=time.monotonic() + timeout)
    worker = threading.Thread(target=contextvars.copy_context().run, args=(step.run,), daemon=True,
                              name=f"cni-{plugin_type or plugin.about}-{args.command}")
    worker.start()
    if not step.done.wait(timeout) and step.abandon():
        _count_abandoned(plugin_type or plugin.about or "?", args.command)
        log.error("built-in plugin %s %s of %s/%s did not finish within %.1fs: abandoned",
                  plugin_type or plugin.about, args.command, args.container_id, args.ifname, timeout)
        raise CniError(
            Code.TRY_AGAIN_LATER, f"built-in plugin {plugin_type!r} {args.command} did not finish within {timeout:.1f}s"
        )
    if step.error is not None:
        raise step.error
    return step.answer


class _Step:
    """One built-in call in a worker thread, and what became of it."""

    def __init__(self, plugin: skel.Plugin, args: skel.CmdArgs, *, deadline: float) -> None:
        self.plugin, self.args, self.deadline = plugin, args, deadline
        self.done = threading.Event()
        self.answer: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._abandoned = False

    def run(self) -> None:
        _deadline.set(self.deadline)
        try:
            self.answer = _run_builtin(self.plugin, self.args)
        except BaseException as exc:  # handed to the waiting caller
            self.error = exc
        with self._lock:
            self.done.set()
            late = self._abandoned
        if late and self.error is None and self.args.command == "ADD":
            self._undo_late_add()

    def abandon(self) -> bool:
        """Mark the step abandoned; False when it finished in the meantime."""
        with self._lock:
            if self.done.is_set():
                return False
            self._abandoned = True
            return True

    def _undo_late_add(self) -> None:
        """The caller gave up and rolled back; what this ADD made after that goes now."""
        _deadline.set(None)
        log.warning("abandoned ADD of %s/%s finished late: deleting what it made", self.args.container_id,
                    self.args.ifname)
        try:
            _run_builtin(self.plugin, self.args.replace(command="DEL"))
        except Exception:  # logged: nobody waits for this thread any more
            log.exception("DEL after the late ADD of %s/%s failed", self.args.container_id, self.args.ifname)


def _count_abandoned(plugin_type: str, command: str) -> None:
    with _abandoned_lock:
        _abandoned[0] += 1
    for hook in list(on_abandon):
        try:
            hook(plugin_type, command)
        except Exception:  # a metrics hook must never turn a deadline into a crash
            log.exception("abandon hook failed")


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
