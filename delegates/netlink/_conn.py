"""Raw rtnetlink sockets, one per namespace per request, and the request scope that owns them.

A netlink socket keeps the network namespace it was created in, so a socket made once
inside a pod's namespace (by the calling thread, which entered it for the moment) serves
every operation of the request there: no thread and no `IPRoute` per call. `session()` is the request scope:
sockets opened within it are reused by namespace path and all closed when it ends, so
nothing outlives the request (an idle socket or worker would keep a deleted namespace
alive). Outside a session every operation opens and closes its own socket.

Standard library only; `_codec` builds what is sent here.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
from collections.abc import Iterator

from delegates.netlink import _codec, errors
from delegates.netlink import netns as _netns

__all__ = ["Conn", "session", "using"]

_NETLINK_ROUTE = 0
_RCVBUF = 1 << 20
_SESSION: contextvars.ContextVar[dict[str | None, Conn] | None] = contextvars.ContextVar(
    "netplex_netlink_session", default=None
)


class Conn:
    """A bound NETLINK_ROUTE socket in one namespace: request, wait for the answer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> list[memoryview]:
        """Send one request and return the payloads of its answer messages (an ack
        alone: none). Raises `OSError` with the kernel's errno on an NLMSG_ERROR."""
        self.seq += 1
        seq = self.seq
        self.sock.send(_codec.message(kind, _codec.NLM_F_REQUEST | flags, seq, body))
        answers: list[memoryview] = []
        while True:
            data = self.sock.recv(65536)
            for msg_type, _, msg_seq, payload in _codec.split(data):
                if msg_seq != seq:
                    continue  # a late answer to an earlier request that gave up
                if msg_type == _codec.NLMSG_ERROR:
                    code = _codec.error_code(payload)
                    if code:
                        raise OSError(code, "netlink")
                    return answers
                if msg_type == _codec.NLMSG_DONE:
                    return answers
                answers.append(payload)
                if not flags & (_codec.NLM_F_ACK | _codec.NLM_F_DUMP):
                    return answers


def _open_here() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, _NETLINK_ROUTE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def _open(netns: str | None) -> Conn:
    if netns is None:
        return Conn(_open_here())
    return Conn(_netns.call(netns, _open_here))


@contextlib.contextmanager
def using(netns: str | None) -> Iterator[Conn]:
    """The request's socket for `netns` (opened on first use), or a fresh one closed on
    exit when no session is active. Raises `NetnsNotFound` for a missing namespace."""
    conns = _SESSION.get()
    if conns is None:
        conn = _open(netns)
        try:
            yield conn
        finally:
            conn.close()
        return
    shared = conns.get(netns)
    if shared is None:
        shared = conns[netns] = _open(netns)
    yield shared


@contextlib.contextmanager
def session() -> Iterator[None]:
    """The scope of one request: netlink sockets are reused by namespace within it and
    all closed at its end. Nested sessions share the outermost one."""
    if _SESSION.get() is not None:
        yield
        return
    conns: dict[str | None, Conn] = {}
    token = _SESSION.set(conns)
    try:
        yield
    finally:
        _SESSION.reset(token)
        for conn in conns.values():
            conn.close()


def forget(netns: str | None) -> None:
    """Drop (and close) the session's socket for `netns`, e.g. after the namespace went."""
    conns = _SESSION.get()
    if conns is not None:
        conn = conns.pop(netns, None)
        if conn is not None:
            conn.close()


def failure(exc: OSError, *, op: str, target: str) -> errors.NetlinkFailure:
    """The `NetlinkFailure` subclass for an errno from `Conn.request`."""
    return errors.from_errno(exc.errno or 0, op=op, target=target)
