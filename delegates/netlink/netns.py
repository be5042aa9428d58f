"""Network namespaces: create, remove and enter them; the only place that calls setns().

Entering is per thread. `call(path, fn)` runs `fn` in a worker thread that did
`setns(fd, CLONE_NEWNET)`, so the caller's thread never changes namespace. `run(path, fn)`
does the same and hands `fn` the worker's `IPRoute`, opened inside that thread: pyroute2
0.9 binds a sync `IPRoute`'s socket to the thread that uses it, so the socket never
leaves the worker.

Workers are reused: entering a namespace and opening an `IPRoute` cost more than most
netlink requests, and one pod ADD makes dozens of calls into the same two namespaces.
A worker belongs to one namespace, keyed by the identity of its nsfs file (device and
inode), not by path, so a namespace removed and made again at the same path gets new
workers; `path=None` is keyed by the CALLING thread's namespace. A worker serves one job
at a time (concurrent callers get workers of their own, a job that calls back in gets
another worker, never a deadlock) and ends after `IDLE_SECONDS` idle, after a failed job
(its socket may be mid-conversation), or if a job moved it to another namespace. While it
lives it keeps its namespace alive: `remove` and `close_idle` end idle workers at once.

No helper process is forked per operation (unlike `IPRoute(netns=...)`). Nothing here
knows about CNI.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pyroute2 import IPRoute

from delegates.netlink.errors import NetnsNotFound

__all__ = [
    "IDLE_SECONDS",
    "RUN_DIR",
    "call",
    "close_idle",
    "create",
    "exists",
    "opened",
    "path_for",
    "remove",
    "run",
    "unique_name",
]

RUN_DIR = "/run/netns"  # where `ip netns add` puts named namespaces

_CLONE_NEWNET = 0x40000000
_MS_REC = 0x4000
_MS_BIND = 0x1000
_MS_SHARED = 1 << 20
_MNT_DETACH = 0x2
_NS_GET_NSTYPE = 0xB703  # ioctl on an nsfs fd: which namespace type it is (Linux 4.11)
_THREAD_NETNS = "/proc/thread-self/ns/net"  # this thread's namespace, not the process's

IDLE_SECONDS = 1.0  # a worker with no job for this long ends, letting its namespace go
MAX_JOBS = 512  # then a worker ends anyway, bounding whatever a long-lived socket collects
MAX_IDLE_PER_NAMESPACE = 8  # idle workers kept per namespace; more end at once

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


# --- the worker pool ---------------------------------------------------------------------

_Key = tuple[int, int]  # (st_dev, st_ino) of the namespace's nsfs file: its identity


class _Job:
    """One `fn` for a worker; `ipr` says whether it wants the worker's `IPRoute`."""

    __slots__ = ("done", "fn", "ipr", "ok", "value")

    def __init__(self, fn: Callable[..., Any], *, ipr: bool) -> None:
        self.fn = fn
        self.ipr = ipr
        self.done = threading.Event()
        self.ok = False
        self.value: Any = None


class _Worker:
    """A thread that entered one namespace and serves jobs from its queue, one at a time,
    with one `IPRoute` opened (on first need) and closed in this thread. It ends after
    IDLE_SECONDS without work, after a failed job, after MAX_JOBS jobs, or when a job left
    it in another namespace; a job never sees a worker that another job is using."""

    def __init__(self, key: _Key, fd: int, path: str | None) -> None:
        self.key = key
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.retired = False
        self._ipr: IPRoute | None = None
        self._entered = threading.Event()
        self._error: BaseException | None = None
        self._fd = fd
        self._path = path
        self._thread = threading.Thread(target=self._main, name="netplex-netns", daemon=True)

    def start(self) -> None:
        """Start the thread and wait until it entered the namespace (or failed to)."""
        self._thread.start()
        self._entered.wait()
        if self._error is not None:
            raise self._error

    def join(self, *, timeout: float) -> None:
        self._thread.join(timeout)

    def _main(self) -> None:
        try:
            if self._path is not None or self.key != _current_key():
                _enter(self._fd, self._path)
            if _current_key() != self.key:  # cannot happen; never serve the wrong namespace
                raise OSError(errno.ESTALE, "setns: entered another namespace", self._path)
        except BaseException as exc:  # handed to the caller, who re-raises it
            self._error = exc
            self.retired = True
            self._entered.set()
            return
        self._entered.set()
        try:
            self._serve()
        finally:
            self.retired = True
            if self._ipr is not None:
                with contextlib.suppress(Exception):
                    self._ipr.close()

    def _serve(self) -> None:
        served = 0
        while True:
            try:
                job = self.jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                if _forget_idle(self):
                    return
                continue  # a caller just took this worker: its job is on the way
            if job is None:
                return
            served += 1
            try:
                if job.ipr:
                    if self._ipr is None:
                        self._ipr = IPRoute()
                    job.value = job.fn(self._ipr)
                else:
                    job.value = job.fn()
                job.ok = True
            except BaseException as exc:  # handed to the caller, who re-raises it
                job.value = exc
            # a failure may have left the socket mid-conversation, a job may have left the
            # namespace: start afresh rather than serve the next job from an unknown state
            try:
                moved = _current_key() != self.key
            except OSError:
                moved = True
            if not job.ok or moved or served >= MAX_JOBS:
                self.retired = True
            job.done.set()
            if self.retired:
                return


_pool_lock = threading.Lock()
_idle: dict[_Key, list[_Worker]] = {}


def _current_key() -> _Key:
    info = os.stat(_THREAD_NETNS)
    return (info.st_dev, info.st_ino)


def _enter(fd: int, path: str | None) -> None:
    if _lib().setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        if code == errno.EINVAL and path is not None:  # a plain file, e.g. a stale /run/netns entry
            raise NetnsNotFound(path)
        raise OSError(code, f"setns: {os.strerror(code).lower()}", path)


def _take_idle(key: _Key) -> _Worker | None:
    with _pool_lock:
        workers = _idle.get(key)
        while workers:
            worker = workers.pop()
            if not workers:
                del _idle[key]
            if not worker.retired:
                return worker
            workers = _idle.get(key)
    return None


def _give_back(worker: _Worker) -> None:
    with _pool_lock:
        if not worker.retired:
            workers = _idle.setdefault(worker.key, [])
            if len(workers) < MAX_IDLE_PER_NAMESPACE:
                workers.append(worker)
                return
    worker.jobs.put(None)


def _forget_idle(worker: _Worker) -> bool:
    """Take an idle `worker` out of the pool; False if a caller has just taken it."""
    with _pool_lock:
        workers = _idle.get(worker.key)
        if workers is None or worker not in workers:
            return False
        workers.remove(worker)
        if not workers:
            del _idle[worker.key]
        worker.retired = True
        return True


def _worker_for(path: str | None) -> _Worker:
    """An idle worker inside `path` (None: the caller's namespace), or a new one."""
    if path is None:
        key = _current_key()
        found = _take_idle(key)
        if found is not None:
            return found
        fd = os.open(_THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
        try:
            worker = _Worker(key, fd, None)
            worker.start()
        finally:
            os.close(fd)
        return worker
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NetnsNotFound(path) from exc
    # only a verified network namespace ever gets a worker, and a worker keeps its
    # namespace alive, so its inode cannot be reused while the worker is in the pool
    found = _take_idle((info.st_dev, info.st_ino))
    if found is not None:
        return found
    with opened(path) as fd:
        fd_info = os.fstat(fd)
        worker = _Worker((fd_info.st_dev, fd_info.st_ino), fd, path)
        worker.start()
    return worker


def _submit(path: str | None, fn: Callable[..., Any], *, ipr: bool) -> Any:
    worker = _worker_for(path)
    job = _Job(fn, ipr=ipr)
    worker.jobs.put(job)
    try:
        job.done.wait()
    except BaseException:  # interrupted: the worker ends once the job is done, unshared
        worker.jobs.put(None)
        raise
    _give_back(worker)
    if not job.ok:
        raise job.value
    return job.value


def close_idle() -> int:
    """End every idle worker now and return how many; busy ones end after their job.

    Workers keep their namespace alive (and its links, e.g. a veth whose host end is on
    a bridge) for up to IDLE_SECONDS after their last job; call this before checking that
    a removed namespace's links are gone, or at shutdown.
    """
    with _pool_lock:
        workers = [worker for group in _idle.values() for worker in group]
        _idle.clear()
        for worker in workers:
            worker.retired = True
    for worker in workers:
        worker.jobs.put(None)
    return len(workers)


def _close_idle_in(key: _Key) -> None:
    """End the idle workers inside one namespace and wait for them to leave it."""
    with _pool_lock:
        workers = _idle.pop(key, [])
        for worker in workers:
            worker.retired = True
    for worker in workers:
        worker.jobs.put(None)
    for worker in workers:
        worker.join(timeout=IDLE_SECONDS)


def _after_fork_in_child() -> None:
    global _pool_lock  # noqa: PLW0603 - the parent's lock may have been held at fork
    _pool_lock = threading.Lock()
    _idle.clear()  # the parent's threads do not exist in the child


os.register_at_fork(after_in_child=_after_fork_in_child)


def call(path: str | None, fn: Callable[[], T]) -> T:
    """Run `fn()` in a worker thread inside the namespace at `path` and return its result.

    `path=None` means the namespace of the calling thread (the process's, from a plugin's
    point of view). Raises `NetnsNotFound` if `path` is missing or not a network namespace.
    Use it for per-namespace work that is not netlink, such as `/proc/sys/net` files.
    """
    return _submit(path, fn, ipr=False)  # type: ignore[no-any-return]


def run(path: str | None, fn: Callable[[IPRoute], T]) -> T:
    """Run `fn(ipr)` in a worker thread inside `path`, with an `IPRoute` opened there.

    The `IPRoute` lives and dies in the worker; `fn` must not keep it.
    """
    return _submit(path, fn, ipr=True)  # type: ignore[no-any-return]


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
    with contextlib.suppress(OSError):
        info = os.stat(path)
        _close_idle_in((info.st_dev, info.st_ino))
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
