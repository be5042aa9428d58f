"""Network namespaces: create, remove and enter them; the only place that calls setns().

Entering is per thread. `call(path, fn)` has the calling thread `setns(fd, CLONE_NEWNET)`
into the namespace, run `fn` and return to its own namespace before anything else runs in
it (as the reference plugins' `ns.Do`); a thread that could not return is never used
again (the process aborts). `run(path, fn)` runs `fn` in a short worker thread that
entered the namespace, with an `IPRoute` opened and closed there (pyroute2 0.9 binds a
sync `IPRoute`'s socket to its thread and runs an asyncio loop in it). The hot operations
use neither: `_conn` opens one raw netlink socket per namespace per request (inside a
`call`), and the socket keeps the namespace.

No helper process is forked per operation (unlike `IPRoute(netns=...)`). Nothing here
knows about CNI.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from delegates.netlink.errors import NetnsNotFound

if TYPE_CHECKING:
    from pyroute2 import IPRoute

__all__ = ["RUN_DIR", "call", "create", "exists", "opened", "path_for", "remove", "run", "unique_name"]

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
        # The process's own symbols, libc's among them (no ctypes.util: it imports
        # shutil, tempfile and bz2 on every exec'd call).
        _libc = ctypes.CDLL(None, use_errno=True)
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
    """Run `fn()` inside the namespace at `path` and return its result.

    The calling thread enters the namespace, runs `fn` and goes back to the namespace it
    was in (what the reference plugins' `ns.Do` does): no thread to start or hand work to,
    and nothing stays inside when the call ends. `path=None` means the namespace of the
    calling thread. Raises `NetnsNotFound` if `path` is missing or not a network
    namespace. Use it for per-namespace work that is not netlink, such as `/proc/sys/net`
    files, or to open a socket (which keeps the namespace it was made in).
    """
    if path is None:
        return fn()
    with opened(path) as fd:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _enter(fd, path)
            try:
                return fn()
            finally:
                if _lib().setns(home, _CLONE_NEWNET) != 0:
                    # Nothing may run on in a thread stuck in another namespace: a link
                    # deleted by name there would be the pod's, or the node's.
                    os.write(2, b"netplex: a thread could not return to its network namespace\n")
                    os.abort()
        finally:
            os.close(home)


def _enter(fd: int, path: str) -> None:
    if _lib().setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        if code == errno.EINVAL:  # a plain file, e.g. a stale unmounted /run/netns entry
            raise NetnsNotFound(path)
        raise OSError(code, f"setns: {os.strerror(code).lower()}", path)


def run(path: str | None, fn: Callable[[IPRoute], T]) -> T:
    """Run `fn(ipr)` in a short worker thread inside `path`, with an `IPRoute` opened there.

    A thread of its own: a sync `IPRoute` runs an asyncio loop, which cannot start in a
    thread whose loop is running (the caller's may be). The `IPRoute` lives and dies in
    the worker; `fn` must not keep it. Only the operations still on pyroute2 come here.
    """

    from pyroute2 import IPRoute

    def with_iproute() -> T:
        ipr = IPRoute()
        try:
            return fn(ipr)
        finally:
            ipr.close()

    if path is None:
        return _in_thread(with_iproute)
    with opened(path) as fd:
        return _in_thread(with_iproute, lambda: _enter(fd, path))


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
