"""Network namespaces: create, remove and enter them; the only place that calls setns().

Entering is per thread. `call(path, fn)` starts a short-lived worker thread that does
`setns(fd, CLONE_NEWNET)`, runs `fn` and ends, so the caller's thread never changes
namespace and nothing is left in a pool half-entered. `run(path, fn)` does the same and
hands `fn` an `IPRoute` opened inside that thread: pyroute2 0.9 binds a sync `IPRoute`'s
socket to the thread that uses it, so the socket must never leave the worker. The hot
operations use neither: `_conn` opens one raw netlink socket per namespace per request.

No helper process is forked per operation (unlike `IPRoute(netns=...)`). Nothing here
knows about CNI.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import ctypes.util
import errno
import fcntl
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from delegates.netlink.errors import NetnsNotFound

if TYPE_CHECKING:
    from pyroute2 import IPRoute

__all__ = ["RUN_DIR", "call", "create", "exists", "opened", "path_for", "remove", "run", "unique_name", "workers"]

RUN_DIR = "/run/netns"  # where `ip netns add` puts named namespaces

_CLONE_NEWNET = 0x40000000
_MS_REC = 0x4000
_MS_BIND = 0x1000
_MS_SHARED = 1 << 20
_MNT_DETACH = 0x2
_NS_GET_NSTYPE = 0xB703  # ioctl on an nsfs fd: which namespace type it is (Linux 4.11)

T = TypeVar("T")

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc  # noqa: PLW0603 - one lazily loaded libc handle per process
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _check(ret: int, what: str, path: str) -> None:
    if ret != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code).lower()}", path)


def path_for(name: str) -> str:
    """The bind-mount path of the named namespace, as `ip netns add NAME` makes it."""
    if not name or "/" in name or name in {".", ".."} or "\0" in name:
        raise ValueError(f'invalid network namespace name "{name}"')
    return os.path.join(RUN_DIR, name)


def exists(path: str) -> bool:
    """True if `path` is a network namespace (an nsfs file of type net), not just a file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, _NS_GET_NSTYPE) == _CLONE_NEWNET
    except OSError:
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def opened(path: str) -> Iterator[int]:
    """An fd for the namespace at `path`, closed on exit; `NetnsNotFound` if it is none.

    Hand it to the kernel (IFLA_NET_NS_FD) to create or move a link into the namespace.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NetnsNotFound(path) from exc
    try:
        try:
            is_netns = fcntl.ioctl(fd, _NS_GET_NSTYPE) == _CLONE_NEWNET
        except OSError:
            is_netns = False
        if not is_netns:  # e.g. a stale, unmounted /run/netns entry
            raise NetnsNotFound(path)
        yield fd
    finally:
        os.close(fd)


def _in_thread(fn: Callable[[], T], setup: Callable[[], None] | None = None) -> T:
    """Run `fn` in a fresh thread (after `setup`), re-raising its exception in the caller."""
    outcome: list[Any] = []

    def work() -> None:
        try:
            if setup is not None:
                setup()
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller, who re-raises it
            outcome.append((False, exc))

    worker = threading.Thread(target=work, name="netplex-netns", daemon=True)
    worker.start()
    worker.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def call(path: str | None, fn: Callable[[], T]) -> T:
    """Run `fn()` in a worker thread inside the namespace at `path` and return its result.

    `path=None` means the namespace of the calling thread (the process's, from a plugin's
    point of view). Raises `NetnsNotFound` if `path` is missing or not a network namespace.
    Use it for per-namespace work that is not netlink, such as `/proc/sys/net` files.
    Inside `workers()` one thread per namespace serves every call of the request.
    """
    if path is None:  # a thread starts in its creator's namespace: no thread to make
        return fn()
    pool = _WORKERS.get()
    if pool is not None:
        worker = pool.get(path)
        if worker is None:
            worker = pool[path] = _Worker(path)
        return worker.run(fn)
    with opened(path) as fd:
        return _in_thread(fn, lambda: _enter(fd, path))


def _enter(fd: int, path: str) -> None:
    if _lib().setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        if code == errno.EINVAL:  # a plain file, e.g. a stale unmounted /run/netns entry
            raise NetnsNotFound(path)
        raise OSError(code, f"setns: {os.strerror(code).lower()}", path)


_WORKERS: contextvars.ContextVar[dict[str, _Worker] | None] = contextvars.ContextVar("netplex_netns_workers",
                                                                                       default=None)


class _Worker:
    """One thread inside one namespace for the length of a request: it enters once and
    runs the request's calls there in turn, then ends (`close`), so it never outlives the
    request (an idle thread in a pod's namespace would keep a deleted namespace alive)."""

    def __init__(self, path: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        with opened(path) as fd:
            self._thread = threading.Thread(target=self._serve, args=(fd, path), name="netplex-netns", daemon=True)
            self._thread.start()
            ok, value = self._done.get()  # entered, or why not; the fd is closed after
        if not ok:
            self._thread.join()
            raise value

    def _serve(self, fd: int, path: str) -> None:
        try:
            _enter(fd, path)
        except BaseException as exc:  # handed to the creator, who re-raises it
            self._done.put((False, exc))
            return
        self._done.put((True, None))
        while (job := self._jobs.get()) is not None:
            try:
                self._done.put((True, job()))
            except BaseException as exc:  # handed to the caller, who re-raises it
                self._done.put((False, exc))

    def run(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:  # a call from within a call
            return fn()
        self._jobs.put(fn)
        ok, value = self._done.get()
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()


@contextlib.contextmanager
def workers() -> Iterator[None]:
    """The scope of one request: `call` runs in one thread per namespace, all ended (and
    joined) when the scope ends. Nested scopes share the outermost one."""
    if _WORKERS.get() is not None:
        yield
        return
    pool: dict[str, _Worker] = {}
    token = _WORKERS.set(pool)
    try:
        yield
    finally:
        _WORKERS.reset(token)
        for worker in pool.values():
            worker.close()


def run(path: str | None, fn: Callable[[IPRoute], T]) -> T:
    """Run `fn(ipr)` in a worker thread inside `path`, with an `IPRoute` opened there.

    The `IPRoute` lives and dies in the worker; `fn` must not keep it.
    """

    from pyroute2 import IPRoute  # only the operations still on pyroute2 come here

    def with_iproute() -> T:
        ipr = IPRoute()
        try:
            return fn(ipr)
        finally:
            ipr.close()

    return call(path, with_iproute)


def create(name: str) -> str:
    """Create the named namespace like `ip netns add NAME` and return its path.

    Makes `/run/netns` a shared mount (so the bind mount propagates to other mount
    namespaces, e.g. a containerd shim's), creates the mount point, and bind-mounts a fresh
    network namespace onto it from a worker thread that unshared its own. Raises
    `FileExistsError` if the name is taken.
    """
    path = path_for(name)
    _share_run_dir()
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    try:
        _in_thread(lambda: _bind_new_netns(path))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path


def _bind_new_netns(path: str) -> None:
    libc = _lib()
    _check(libc.unshare(_CLONE_NEWNET), "unshare", path)
    # /proc/thread-self: this thread's namespace, not the thread group leader's
    source = b"/proc/thread-self/ns/net"
    _check(libc.mount(source, path.encode(), b"none", _MS_BIND, None), "mount", path)


def _share_run_dir() -> None:
    """Make RUN_DIR a shared mount point, bind-mounting it onto itself first if need be."""
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)
    libc = _lib()
    target = RUN_DIR.encode()
    if libc.mount(b"none", target, None, _MS_SHARED | _MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:  # EINVAL: not a mount point yet
        _check(-1, "mount --make-rshared", RUN_DIR)
    _check(libc.mount(target, target, b"none", _MS_BIND | _MS_REC, None), "mount --bind", RUN_DIR)
    _check(libc.mount(b"none", target, None, _MS_SHARED | _MS_REC, None), "mount --make-rshared", RUN_DIR)


def remove(name: str) -> None:
    """Unmount and delete the named namespace; a missing one is not an error."""
    path = path_for(name)
    if _lib().umount2(path.encode(), _MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code == errno.ENOENT:
            return
        if code != errno.EINVAL:  # EINVAL: not mounted (a leftover file), just unlink it
            raise OSError(code, f"umount: {os.strerror(code).lower()}", path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def unique_name(prefix: str) -> str:
    """A fresh namespace name, `prefix` plus 10 hex digits."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"
