"""Connectivity probes for the network-policy tests: real packets between pod namespaces.

- `Listener`: a tiny echo server in a pod's namespace (TCP and UDP on the given ports,
  IPv4 and IPv6), a subprocess that lives at most LIFETIME seconds and is stopped by the
  test's fixture;
- `tcp()`, `udp()`, `ping()`: one bounded attempt from another pod's namespace, True
  when the answer came;
- `Conversation`: one TCP connection kept open, to show that a flow allowed before a
  change keeps working after it;
- `eventually()`: wait for a condition with a deadline (never a fixed sleep).

Traffic only ever flows between namespaces the test made; nothing touches the host."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

PROBE_TIMEOUT = 0.8  # seconds one probe waits for its answer
LIFETIME = 300  # seconds a listener lives at most

_SERVER = r"""
import socket, sys, threading, time
tcp_ports = [int(p) for p in sys.argv[1].split(",") if p]
udp_ports = [int(p) for p in sys.argv[2].split(",") if p]
def echo(conn):
    with conn:
        while True:
            data = conn.recv(4096)
            if not data:
                return
            conn.sendall(data)
def serve_tcp(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port)); s.listen(64)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()
def serve_udp(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    while True:
        data, peer = s.recvfrom(4096)
        s.sendto(data, peer)
for p in tcp_ports:
    threading.Thread(target=serve_tcp, args=(p,), daemon=True).start()
for p in udp_ports:
    threading.Thread(target=serve_udp, args=(p,), daemon=True).start()
print("ready", flush=True)
time.sleep(float(sys.argv[3]))
"""

_CLIENT = r"""
import socket, sys
kind, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
try:
    if kind == "tcp":
        s = socket.create_connection((host, port), timeout=timeout)
        s.sendall(b"hi"); ok = s.recv(16) == b"hi"
    else:
        s = socket.socket(family, socket.SOCK_DGRAM); s.settimeout(timeout)
        s.sendto(b"hi", (host, port)); ok = s.recv(16) == b"hi"
except OSError:
    ok = False
print("ok" if ok else "no")
"""

_CONVERSATION = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=5)
s.settimeout(3)
print("connected", flush=True)
for line in sys.stdin:
    try:
        s.sendall(line.encode()); print(s.recv(4096).decode().strip() or "closed", flush=True)
    except OSError as exc:
        print("error", type(exc).__name__, flush=True)
"""


def _in_ns(netns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", os.path.basename(netns), *argv]


def _python(script: str) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", script]


class Listener:
    """An echo server in `netns`; `close()` ends it."""

    def __init__(self, netns: str, *, tcp: tuple[int, ...] = (), udp: tuple[int, ...] = ()) -> None:
        ports = [",".join(map(str, tcp)), ",".join(map(str, udp)), str(LIFETIME)]
        self.proc = subprocess.Popen(
            _in_ns(netns, *_python(_SERVER), *ports), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", (line, self.proc.stderr.read() if self.proc.stderr else "")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def tcp(netns: str, host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    return _client(netns, "tcp", host, port, timeout)


def udp(netns: str, host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    return _client(netns, "udp", host, port, timeout)


def ping(netns: str, host: str) -> bool:
    """One ICMP echo (ping or ping -6), waiting at most a second."""
    argv = _in_ns(netns, "ping", "-n", "-q", "-c", "1", "-W", "1", host)
    return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0


def _client(netns: str, kind: str, host: str, port: int, timeout: float) -> bool:
    argv = _in_ns(netns, *_python(_CLIENT), kind, host, str(port), str(timeout))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10, check=False).stdout
    return out.strip() == "ok"


class Conversation:
    """One TCP connection from `netns` to host:port, kept open; `say()` sends a line and
    returns the echo (or an error word)."""

    def __init__(self, netns: str, host: str, port: int) -> None:
        self.proc = subprocess.Popen(
            _in_ns(netns, *_python(_CONVERSATION), host, str(port)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.read() == "connected"

    def read(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def say(self, text: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def eventually(condition: Callable[[], bool], *, within: float = 15.0, what: str = "the condition") -> None:
    """Wait until `condition()` holds, at most `within` seconds (a deadline, not a sleep)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not hold within {within}s")
        time.sleep(0.05)


@pytest.fixture
def listeners() -> Iterator[Callable[..., Listener]]:
    made: list[Listener] = []

    def make(netns: str, *, tcp: tuple[int, ...] = (), udp: tuple[int, ...] = ()) -> Listener:
        listener = Listener(netns, tcp=tcp, udp=udp)
        made.append(listener)
        return listener

    try:
        yield make
    finally:
        for listener in made:
            listener.close()
