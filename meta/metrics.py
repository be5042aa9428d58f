"""The daemon's metrics: what it counts, and (opt-in, with `metricsAddress`) a Prometheus
endpoint that exports them.

`Metrics` is the interface the daemon calls and does nothing; `PrometheusMetrics` records
into its own registry and serves it over HTTP. `prometheus_client` is imported only when
metrics are switched on, so a daemon without `metricsAddress` never loads it.

Exported series (all prefixed `netplex_`):
  cni_requests_total{command,code}            CNI requests served, by result code (0: ok)
  cni_request_duration_seconds{command,code}  their latency, queueing included
  cni_queue_wait_seconds                      time a request waited for a worker
  delegate_duration_seconds{type,command}     each delegate call (built-in or exec)
  api_requests_total{verb}                    requests to the Kubernetes API server
  inflight_requests                           CNI requests being served or waiting
  cache_objects{cache}                        objects held by each watch cache
  hotplug_operations_total{action,outcome}    hot-plug adds/removes on running pods, ok or failed
  policy_rules                                nftables rules network policy has in this node's pods
  policy_sync_seconds                         from a change (policy, namespace, pod) to its enforcement
  policy_sync_errors_total                    policy transactions that failed (retried)
  abandoned_steps_total{type,command}         built-in steps given up at their deadline
  events_total{reason,outcome}                pod events: posted, failed, dropped by the rate limit

Delegate timing needs a hook in `cni.invoke` that does not exist yet: until it does,
`time_delegates()` wraps `cni.invoke.invoke` for the life of the daemon process (and puts
it back on `close`)."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """What the daemon measures; this base records nothing (metrics switched off)."""

    @contextlib.contextmanager
    def inflight(self) -> Iterator[None]:
        yield

    def observe_request(self, command: str, code: int, seconds: float) -> None:
        """One CNI request finished with result `code` (0: success)."""

    def observe_queue_wait(self, seconds: float) -> None:
        """A request waited this long for its sandbox lock and a worker."""

    def observe_delegate(self, plugin_type: str, command: str, seconds: float) -> None:
        """One delegate call took this long."""

    def count_api_request(self, verb: str) -> None:
        """One request to the Kubernetes API server (get, list, watch, patch)."""

    def watch_cache_size(self, cache: str, size: Callable[[], int]) -> None:
        """Report `size()` as the object count of watch cache `cache`."""

    def count_hotplug(self, action: str, outcome: str) -> None:
        """One hot-plug step on a running pod (action add/remove/resolve, outcome ok/failed)."""

    def time_delegates(self) -> None:
        """Start timing every delegate call in this process."""

    def observe_policy_sync(self, seconds: float) -> None:
        """A network policy change was enforced on every local pod this long after it came."""

    def count_policy_error(self) -> None:
        """A network policy transaction (or a reconcile) failed."""

    def observe_policy_rules(self, count: int) -> None:
        """Network policy now has `count` nftables rules in this node's pods."""

    def count_event(self, reason: str, outcome: str) -> None:
        """One pod event: `posted`, `failed` or `dropped` (rate limit, full queue)."""

    def close(self) -> None:
        """Stop serving and undo `time_delegates`."""


class PrometheusMetrics(Metrics):
    """Metrics in a registry of their own, served at `address` ("host:port", ":port")."""

    def __init__(self, address: str) -> None:
        import prometheus_client as prom

        host, port = parse_address(address)
        self.registry = prom.CollectorRegistry(auto_describe=True)
        self._requests = prom.Counter(
            "netplex_cni_requests", "CNI requests served, by command and result code",
            ["command", "code"], registry=self.registry,
        )
        self._latency = prom.Histogram(
            "netplex_cni_request_duration_seconds", "CNI request latency, queueing included",
            ["command", "code"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self._queue = prom.Histogram(
            "netplex_cni_queue_wait_seconds", "time a CNI request waited for its sandbox lock and a worker",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self._delegates = prom.Histogram(
            "netplex_delegate_duration_seconds", "delegate call latency, by plugin type and command",
            ["type", "command"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self._api = prom.Counter(
            "netplex_api_requests", "requests to the Kubernetes API server, by verb",
            ["verb"], registry=self.registry,
        )
        self._inflight = prom.Gauge(
            "netplex_inflight_requests", "CNI requests being served or waiting for a worker",
            registry=self.registry,
        )
        self._caches = prom.Gauge(
            "netplex_cache_objects", "objects held by each watch cache", ["cache"], registry=self.registry,
        )
        self._hotplug = prom.Counter(
            "netplex_hotplug_operations", "hot-plug steps on running pods, by action and outcome",
            ["action", "outcome"], registry=self.registry,
        )
        self._policy_rules = prom.Gauge(
            "netplex_policy_rules", "nftables rules network policy has in this node's pods", registry=self.registry,
        )
        self._policy_sync = prom.Histogram(
            "netplex_policy_sync_seconds", "from a policy, namespace or pod change to its enforcement",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self._policy_errors = prom.Counter(
            "netplex_policy_sync_errors", "network policy transactions that failed", registry=self.registry,
        )
        self._abandoned = prom.Counter(
            "netplex_abandoned_steps", "built-in delegate steps abandoned at their deadline",
            ["type", "command"], registry=self.registry,
        )
        self._events = prom.Counter(
            "netplex_events", "pod events, by reason and outcome (posted, failed, dropped)",
            ["reason", "outcome"], registry=self.registry,
        )
        self._undo: Callable[[], None] | None = None
        self._server, self._thread = prom.start_http_server(port, addr=host, registry=self.registry)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._server.server_address[1])

    @contextlib.contextmanager
    def inflight(self) -> Iterator[None]:
        with self._inflight.track_inprogress():
            yield

    def observe_request(self, command: str, code: int, seconds: float) -> None:
        self._requests.labels(command, str(code)).inc()
        self._latency.labels(command, str(code)).observe(seconds)

    def observe_queue_wait(self, seconds: float) -> None:
        self._queue.observe(seconds)

    def observe_delegate(self, plugin_type: str, command: str, seconds: float) -> None:
        self._delegates.labels(plugin_type, command).observe(seconds)

    def count_api_request(self, verb: str) -> None:
        self._api.labels(verb).inc()

    def watch_cache_size(self, cache: str, size: Callable[[], int]) -> None:
        self._caches.labels(cache).set_function(lambda: float(size()))

    def count_hotplug(self, action: str, outcome: str) -> None:
        self._hotplug.labels(action, outcome).inc()

    def observe_policy_sync(self, seconds: float) -> None:
        self._policy_sync.observe(seconds)

    def count_policy_error(self) -> None:
        self._policy_errors.inc()

    def observe_policy_rules(self, count: int) -> None:
        self._policy_rules.set(count)


    def count_event(self, reason: str, outcome: str) -> None:
        self._events.labels(reason, outcome).inc()

    def _count_abandoned(self, plugin_type: str, command: str) -> None:
        self._abandoned.labels(plugin_type, command).inc()

    def time_delegates(self) -> None:
        if self._undo is None:
            from cni import invoke as cni_invoke

            undo_timing = wrap_invoke(self.observe_delegate)
            cni_invoke.on_abandon.append(self._count_abandoned)

            def undo() -> None:
                undo_timing()
                if self._count_abandoned in cni_invoke.on_abandon:
                    cni_invoke.on_abandon.remove(self._count_abandoned)

            self._undo = undo

    def close(self) -> None:
        if self._undo is not None:
            self._undo()
            self._undo = None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def create(address: str) -> Metrics:
    """Prometheus metrics served at `address`, or the silent `Metrics` when it is empty."""
    return PrometheusMetrics(address) if address else Metrics()


def parse_address(address: str) -> tuple[str, int]:
    """ "host:port", "[v6]:port" or ":port" (all addresses) -> (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"metricsAddress {address!r}: want host:port")
    host = host.strip("[]") or "0.0.0.0"  # ":port" means every address, as Go's net.Listen
    return host, int(port_text)


_invoke_lock = threading.Lock()


def wrap_invoke(observe: Callable[[str, str, float], None]) -> Callable[[], None]:
    """Time every `cni.invoke.invoke` call (the one door to every delegate, built-in or
    exec'd) by plugin type and command; returns the function that puts it back."""
    from cni import invoke as cni_invoke

    with _invoke_lock:
        original = cni_invoke.invoke

        @functools.wraps(original)
        def timed(conf: Any, args: Any, **kwargs: Any) -> dict[str, Any] | None:
            started = time.monotonic()
            try:
                return original(conf, args, **kwargs)
            finally:
                observe(str(conf.get("type", "")), str(args.command), time.monotonic() - started)

        cni_invoke.invoke = timed

    def undo() -> None:
        with _invoke_lock:
            if cni_invoke.invoke is timed:
                cni_invoke.invoke = original

    return undo
