"""The log phase observes histograms and counters through their values directly (metrics.py's
``_Observe``, ``_counter``): the samples must be exactly what prometheus_client's public
``observe`` / ``inc`` give, bucket bounds included."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from proxy.gateway import metrics

AMOUNTS = [0.0, -1.0, 1e-9, *metrics.DURATION_BUCKETS, 0.0011, 0.0049999, 7.5, 30.0000001, 1e9]


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_the_fast_histogram_fills_the_same_buckets_as_observe() -> None:
    public, fast = CollectorRegistry(), CollectorRegistry()
    for registry, direct in ((public, False), (fast, True)):
        histogram = Histogram("h", "h", ["route"], buckets=metrics.DURATION_BUCKETS, registry=registry)
        child = histogram.labels("r")
        observe = metrics._Observe(child).observe if direct else child.observe
        for amount in AMOUNTS:
            observe(amount)
    assert samples(fast) == samples(public)
    assert samples(public)[("h_bucket", (("le", "0.001"), ("route", "r")))] == 4  # -1, 0, 1e-9, 0.001


def test_the_fast_counter_counts_as_inc() -> None:
    registry = CollectorRegistry()
    counter = Counter("c", "c", ["route"], registry=registry)
    metrics._counter(counter.labels("r")).inc(1)
    counter.labels("r").inc()
    assert samples(registry)[("c_total", (("route", "r"),))] == 2


def test_with_several_workers_increments_wait_for_the_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    # Multi-process mode (BUFFERED): values are written once a second by flush(), not per request
    # (each write is an mmap update under a lock). What a flush writes is exactly what direct
    # increments would have written.
    monkeypatch.setattr(metrics, "BUFFERED", True)
    public, fast = CollectorRegistry(), CollectorRegistry()
    for registry, direct in ((public, False), (fast, True)):
        histogram = Histogram("h", "h", ["route"], buckets=metrics.DURATION_BUCKETS, registry=registry)
        counter = Counter("c", "c", ["route"], registry=registry)
        observe = metrics._Observe(histogram.labels("r")).observe if direct else histogram.labels("r").observe
        inc = metrics._counter(counter.labels("r")).inc if direct else counter.labels("r").inc
        for amount in AMOUNTS:
            observe(amount)
            inc(1)
    assert samples(fast)[("c_total", (("route", "r"),))] == 0
    assert samples(fast)[("h_bucket", (("le", "+Inf"), ("route", "r")))] == 0
    metrics.flush()
    assert samples(fast) == samples(public)
    metrics.flush()  # nothing new: nothing written twice
    assert samples(fast) == samples(public)
