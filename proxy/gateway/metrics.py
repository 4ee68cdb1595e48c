"""Prometheus metrics of the data plane: every metric object, defined once per process.

The log phase records each request with ``observe_request`` (called by ``accesslog.emit``);
the other functions are called where the event happens (limiter, snapshot store, forwarder,
WebSocket relay). docs/metrics.md documents every metric and label.

With several worker processes, prometheus_client's multi-process mode writes each value into
an mmap file under ``PROMETHEUS_MULTIPROC_DIR`` and /metrics merges the files, so one scrape
reports the totals of all workers (apigw/multiproc.py sets the directory up). A gauge's
``multiprocess_mode`` says how the workers' values combine; the ``live`` modes drop the values
of workers that have exited.

Label values stay bounded: routes and upstreams come from the configuration, methods are
folded to the standard ones, status codes are three digits. Partners are labels only when
``configure`` allows it, and then only a bounded set (per-consumer labels on every request
series are what explodes cardinality in other gateways).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, values

# Sub-millisecond resolution at the bottom, where gateway overhead and Redis calls live.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
STREAM_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
REBUILD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

UNMATCHED = "_unmatched"  # route label of requests no route matched
OTHER = "_other"  # label of values outside the bounded set (methods, partners)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}

# -- requests (observed in the log phase) ------------------------------------------------------
REQUESTS = Counter(
    "apigw_requests", "Proxied requests, by route, method and status code.", ["route", "method", "status"]
)
REQUEST_DURATION = Histogram(
    "apigw_request_duration_seconds",
    "Time from the request's arrival to the last byte of the response, by route.",
    ["route"],
    buckets=DURATION_BUCKETS,
)
STREAM_DURATION = Histogram(
    "apigw_stream_duration_seconds",
    "Life of WebSocket sessions and streamed responses (server-sent events), by route; not in the latency histograms.",
    ["route"],
    buckets=STREAM_BUCKETS,
)
UPSTREAM_DURATION = Histogram(
    "apigw_upstream_duration_seconds",
    "Time from sending the request upstream to the last byte of its response, by route and upstream.",
    ["route", "upstream"],
    buckets=DURATION_BUCKETS,
)
OVERHEAD = Histogram(
    "apigw_gateway_overhead_seconds",
    "Time the gateway adds to a forwarded request (total minus upstream), by route.",
    ["route"],
    buckets=OVERHEAD_BUCKETS,
)
RATELIMIT_DECISIONS = Counter(
    "apigw_ratelimit_decisions",
    "Limiter decisions by route and outcome (allowed, rate_limited, quota_exceeded, limiter_unavailable, local).",
    ["route", "outcome"],
)
PARTNER_REQUESTS = Counter(
    "apigw_partner_requests",
    "Requests of authenticated partners by status class and limiter outcome (only with METRICS_PARTNER_LABELS).",
    ["partner", "status_class", "outcome"],
)
# One series per partner with a quota, not multiplied by routes or buckets: always on, or the
# "near monthly quota" alert could not fire.
QUOTA_USED = Gauge(
    "apigw_quota_used_ratio",
    "Share of the partner's monthly quota used (0..1, above 1 when exceeded).",
    ["partner", "plan"],
    multiprocess_mode="mostrecent",
)

# Access-log lines dropped because stdout was not read and the writer's queue was full
# (proxy/gateway/logwriter.py): the loop never waits for the log reader.
LOG_LINES_DROPPED = Counter(
    "apigw_log_lines_dropped", "Log lines dropped because the log writer's queue was full (stdout not read)."
)

# -- Redis -------------------------------------------------------------------------------------
REDIS_ERRORS = Counter("apigw_redis_errors", "Failed Redis calls, by operation.", ["operation"])
REDIS_DURATION = Histogram(
    "apigw_redis_call_duration_seconds", "Redis call latency, by operation.", ["operation"], buckets=REDIS_BUCKETS
)
REDIS_UP = Gauge(
    "apigw_redis_up",
    "1 if the last Redis check of this instance succeeded, else 0.",
    multiprocess_mode="livemostrecent",
)

# -- configuration snapshot --------------------------------------------------------------------
# livemin: with several workers the oldest snapshot is the one that matters for staleness.
CONFIG_VERSION = Gauge(
    "apigw_config_version", "Version of the configuration snapshot served.", multiprocess_mode="livemin"
)
CONFIG_TIMESTAMP = Gauge(
    "apigw_config_snapshot_timestamp_seconds",
    "Unix time the served snapshot was built; its age is time() minus this.",
    multiprocess_mode="livemin",
)
CONFIG_REBUILD = Histogram(
    "apigw_config_rebuild_duration_seconds",
    "Time to load and compile a configuration snapshot.",
    buckets=REBUILD_BUCKETS,
)

# -- upstream targets --------------------------------------------------------------------------
# livemax: a target is up while at least one worker may use it; the circuit shows its worst state.
TARGET_UP = Gauge(
    "apigw_upstream_target_up",
    "1 if the target receives traffic, 0 if it is ejected or failing its health checks.",
    ["upstream", "target"],
    multiprocess_mode="livemax",
)
CIRCUIT_STATE = Gauge(
    "apigw_upstream_circuit_state",
    "Circuit breaker state of the target: 0 closed, 1 half-open, 2 open.",
    ["upstream", "target"],
    multiprocess_mode="livemax",
)

# -- WebSockets --------------------------------------------------------------------------------
WEBSOCKETS_ACTIVE = Gauge(
    "apigw_websocket_connections", "Open WebSocket sessions, by route.", ["route"], multiprocess_mode="livesum"
)
WEBSOCKET_SESSIONS = Counter("apigw_websocket_sessions", "WebSocket sessions opened, by route.", ["route"])
WEBSOCKET_MESSAGES = Counter(
    "apigw_websocket_messages",
    "WebSocket messages relayed, by route and direction (upstream: client to upstream; downstream: back).",
    ["route", "direction"],
)


class PartnerLabels:
    """Which partners get a label value of their own. Off (``""``), a list of slugs, or every
    partner (``"*"``) up to ``limit`` per process; the rest share the value ``_other``."""

    __slots__ = ("enabled", "allowed", "limit", "_seen")

    def __init__(self, spec: str = "", limit: int = 100) -> None:
        slugs = [s.strip() for s in spec.split(",") if s.strip()]
        self.enabled = bool(slugs)
        self.allowed: frozenset[str] | None = None if slugs == ["*"] else frozenset(slugs)
        self.limit = limit
        self._seen: set[str] = set()

    def label(self, partner: str) -> str:
        if self.allowed is not None:
            return partner if partner in self.allowed else OTHER
        if partner in self._seen:
            return partner
        if len(self._seen) < self.limit:
            self._seen.add(partner)
            return partner
        return OTHER


partner_labels = PartnerLabels()


def configure(*, partner_labels_spec: str = "", partner_labels_limit: int = 100) -> None:
    """Apply the METRICS_PARTNER_LABELS settings (once, at start-up)."""
    global partner_labels
    partner_labels = PartnerLabels(partner_labels_spec, partner_labels_limit)
    _children.clear()


# What happened to a request, for the series it feeds: answered by the gateway itself,
# forwarded, or a long-lived stream (WebSocket session, server-sent events).
_LOCAL, _FORWARDED, _STREAMED = 0, 1, 2


# In multi-process mode every value's inc() takes a lock and writes the value into its mmap
# file: ≈ 2 µs, eight times per forwarded request, which made two workers' requests 19 % dearer
# in CPU than one worker's (2026-11-30, docs/benchmarks.md). There the request series collect
# their increments in process memory, and ``flush`` (the gateway's loop, once a second, and at
# shutdown) writes them: a scrape lags by at most that second. One process keeps its values in
# memory anyway (an inc is ≈ 0.2 µs): they are updated at once.
BUFFERED = values.ValueClass is not values.MutexValue
FLUSH_SECONDS = 1.0


class _Buffered:
    """A value's increments not yet written to it (multi-process mode)."""

    __slots__ = ("value", "pending")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.pending = 0.0

    def inc(self, amount: float) -> None:
        if not self.pending:
            _dirty.append(self)
        self.pending += amount


_dirty: list[_Buffered] = []


def flush() -> None:
    """Write the increments collected since the last flush (multi-process mode; else a no-op)."""
    global _dirty
    dirty, _dirty = _dirty, []
    for cell in dirty:
        if cell.pending:
            amount, cell.pending = cell.pending, 0.0
            cell.value.inc(amount)


def _cell(value: Any) -> Any:
    return _Buffered(value) if BUFFERED else value


class _Observe:
    """One labelled histogram child, observed without prometheus_client's per-call checks: its
    sum and bucket values held directly, the bucket found by bisection (the library walks the
    bounds one by one and checks twice that the child is observable). ≈ 1 µs less per
    observation, three per forwarded request; the values, and so the scrape (multi-process mode
    included), are the library's own. tests/observability/test_metrics_fast_path.py holds it to
    the public ``observe``."""

    __slots__ = ("sum", "buckets", "bounds")

    def __init__(self, child: Histogram) -> None:
        self.sum: Any = _cell(child._sum)
        self.buckets: list[Any] = [_cell(bucket) for bucket in child._buckets]
        self.bounds: list[float] = child._upper_bounds  # ends with +Inf: every amount has a bucket
        assert len(self.buckets) == len(self.bounds)

    def observe(self, amount: float) -> None:
        self.sum.inc(amount)
        # The first bucket whose upper bound is >= amount, as the library's loop finds it.
        self.buckets[bisect_left(self.bounds, amount)].inc(1)


def _counter(child: Counter) -> Any:
    """A labelled counter child's value, whose ``inc(1)`` is the child's ``inc()`` without its checks."""
    return _cell(child._value)


class _Children:
    """The labelled children one kind of request updates, looked up once per label combination:
    ``metric.labels(...)`` takes a lock and builds a key on every call. Only the series this
    kind of request feeds are created, so no empty histograms appear for, e.g., unmatched
    requests that never had an upstream."""

    __slots__ = ("requests", "duration", "upstream", "overhead", "decision")

    def __init__(self, route: str, upstream: str, method: str, status: str, outcome: str, kind: int) -> None:
        self.requests = _counter(REQUESTS.labels(route, method, status))
        # A stream's duration is its life, not a latency: it gets a histogram of its own.
        self.duration = _Observe((STREAM_DURATION if kind == _STREAMED else REQUEST_DURATION).labels(route))
        self.upstream = _Observe(UPSTREAM_DURATION.labels(route, upstream)) if kind == _FORWARDED else None
        self.overhead = _Observe(OVERHEAD.labels(route)) if kind != _LOCAL else None
        self.decision = _counter(RATELIMIT_DECISIONS.labels(route, outcome)) if outcome else None


_children: dict[tuple[str, str, str, int, str, int], _Children] = {}
# Route names change with the configuration; a bound keeps a long-lived process's cache small.
_CHILDREN_MAX = 10_000


def observe_request(
    *,
    route: str,
    upstream: str,
    method: str,
    status: int,
    outcome: str,
    seconds: float,
    upstream_seconds: float | None,
    partner: str | None,
    streamed: bool = False,
) -> None:
    """Record one finished request. ``upstream_seconds`` is None when nothing was forwarded;
    ``streamed`` marks a long-lived streamed response (server-sent events)."""
    kind = _LOCAL if upstream_seconds is None else _STREAMED if streamed else _FORWARDED
    key = (route, upstream, method, status, outcome, kind)
    children = _children.get(key)
    if children is None:
        if len(_children) >= _CHILDREN_MAX:
            _children.clear()
        method_label = method if method in _METHODS else OTHER
        children = _children[key] = _Children(route, upstream, method_label, str(status), outcome, kind)
    children.requests.inc(1)
    children.duration.observe(seconds)
    if upstream_seconds is not None:
        if children.upstream is not None:
            children.upstream.observe(upstream_seconds)
        if children.overhead is not None:
            children.overhead.observe(max(0.0, seconds - upstream_seconds))
    if children.decision is not None:
        children.decision.inc(1)
    if partner is not None and partner_labels.enabled:
        PARTNER_REQUESTS.labels(partner_labels.label(partner), f"{status // 100}xx", outcome or "none").inc()


def set_quota_used_ratio(partner: str, plan: str, ratio: float) -> None:
    """The share of ``partner``'s monthly quota on ``plan`` used so far (used / quota)."""
    QUOTA_USED.labels(partner, plan).set(ratio)


_redis_calls: dict[str, _Observe] = {}


def observe_redis_call(operation: str, seconds: float) -> None:
    observe = _redis_calls.get(operation)
    if observe is None:  # a handful of operations: no bound needed
        observe = _redis_calls[operation] = _Observe(REDIS_DURATION.labels(operation))
    observe.observe(seconds)


def count_redis_error(operation: str) -> None:
    REDIS_ERRORS.labels(operation).inc()


def set_redis_up(up: bool) -> None:
    REDIS_UP.set(1 if up else 0)


def observe_snapshot(version: int, built_at: float, rebuild_seconds: float | None) -> None:
    """A snapshot was swapped in: its version, its build time (Unix seconds) and how long the
    load and compile took (None when it came from the copy kept in Redis)."""
    CONFIG_VERSION.set(version)
    CONFIG_TIMESTAMP.set(built_at)
    if rebuild_seconds is not None:
        CONFIG_REBUILD.observe(rebuild_seconds)


def set_target_health(upstream: str, target: str, healthy: bool) -> None:
    """``target`` is the target's authority (``host:port``), as in the access log."""
    TARGET_UP.labels(upstream, target).set(1 if healthy else 0)


def set_circuit_state(upstream: str, target: str, state: str) -> None:
    """``state``: closed, half_open or open."""
    CIRCUIT_STATE.labels(upstream, target).set(CIRCUIT_STATES[state])


def set_upstream_targets(upstream: str, targets: Iterable[str]) -> None:
    """Mark every target of a newly compiled upstream healthy with a closed circuit, so the
    gauges exist (and "all targets down" can be computed) before anything fails."""
    for target in targets:
        set_target_health(upstream, target, True)
        set_circuit_state(upstream, target, "closed")


def websocket_opened(route: str) -> None:
    WEBSOCKETS_ACTIVE.labels(route).inc()
    WEBSOCKET_SESSIONS.labels(route).inc()


def websocket_closed(route: str) -> None:
    WEBSOCKETS_ACTIVE.labels(route).dec()


def count_websocket_messages(route: str, direction: str, count: int = 1) -> None:
    """``direction``: ``upstream`` (client → upstream) or ``downstream`` (upstream → client)."""
    WEBSOCKET_MESSAGES.labels(route, direction).inc(count)


def websocket_message_counters(route: str) -> tuple[Counter, Counter]:
    """The (upstream, downstream) message counters of a route, to look up once per session and
    ``.inc()`` per message."""
    return WEBSOCKET_MESSAGES.labels(route, "upstream"), WEBSOCKET_MESSAGES.labels(route, "downstream")
