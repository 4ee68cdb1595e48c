"""Load-balancing algorithms on the balancer itself (proxy/gateway/balancer.py): canary shares
over 10,000 picks, least outstanding requests, consistent hashing, skipping ejected targets."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from proxy.gateway.balancer import Upstream


def upstream(*weights: int, **spec: Any) -> Upstream:
    return Upstream(
        {
            "name": "u",
            "targets": [{"url": f"http://10.0.0.{i + 1}:8000", "weight": w} for i, w in enumerate(weights)],
            **spec,
        }
    )


def shares(counts: Counter[int], total: int) -> list[float]:
    return [counts[i] / total for i in range(max(counts) + 1)]


@pytest.mark.parametrize("algorithm", ["round_robin", "least_requests"])
def test_a_5_percent_canary_gets_5_percent_of_10000_requests(algorithm: str) -> None:
    balanced = upstream(95, 5, algorithm=algorithm)
    counts = Counter(balanced.choose(now=0.0) for _ in range(10_000))
    canary = counts[1] / 10_000
    assert abs(canary - 0.05) <= 0.02
    assert counts == {0: 9_500, 1: 500}  # smooth weighted round-robin is exact when idle


def test_a_canary_keeps_its_share_around_an_ejection() -> None:
    balanced = upstream(90, 10)
    canary = balanced.circuits[1]
    picks = [balanced.choose(now=0.0) for _ in range(5_000)]
    canary.open(0.0)  # ejected for 10 s: everything to the stable target
    during = Counter(balanced.choose(now=1.0) for _ in range(1_000))
    assert during == {0: 1_000}
    canary.close(local=True)
    picks += [balanced.choose(now=20.0) for _ in range(5_000)]
    assert abs(Counter(picks)[1] / 10_000 - 0.10) <= 0.02


def test_least_requests_sends_new_requests_away_from_a_busy_target() -> None:
    balanced = upstream(1, 1, 1, algorithm="least_requests")
    balanced.inflight[0] = 50  # a slow target piles up requests
    counts = Counter(balanced.choose(now=0.0) for _ in range(1_000))
    assert counts[0] < 30
    assert abs(counts[1] - counts[2]) <= 1


def test_least_requests_follows_the_requests_in_flight() -> None:
    balanced = upstream(1, 1, algorithm="least_requests")
    first = balanced.choose(now=0.0)
    assert first is not None
    balanced.inflight[first] += 1
    second = balanced.choose(now=0.0)
    assert second != first


def test_consistent_hash_keeps_a_caller_on_one_target() -> None:
    balanced = upstream(1, 1, 1, algorithm="consistent_hash")
    for partner in ("acme", "globex", "initech", "umbrella"):
        assert len({balanced.choose(partner, now=0.0) for _ in range(100)}) == 1


def test_consistent_hash_spreads_callers_by_weight() -> None:
    balanced = upstream(95, 5, algorithm="consistent_hash")
    counts = Counter(balanced.choose(f"partner-{i}", now=0.0) for i in range(10_000))
    assert abs(counts[1] / 10_000 - 0.05) <= 0.02


def test_consistent_hash_moves_only_the_callers_of_an_ejected_target() -> None:
    balanced = upstream(1, 1, 1, algorithm="consistent_hash")
    keys = [f"partner-{i}" for i in range(3_000)]
    before = {k: balanced.choose(k, now=0.0) for k in keys}
    balanced.circuits[2].open(0.0)
    after = {k: balanced.choose(k, now=1.0) for k in keys}
    moved = {k for k in keys if before[k] != after[k]}
    assert moved == {k for k in keys if before[k] == 2}
    assert 2 not in after.values()
    balanced.circuits[2].close(local=True)
    assert {k: balanced.choose(k, now=20.0) for k in keys} == before  # they come back


def test_consistent_hash_without_a_key_falls_back_to_round_robin() -> None:
    balanced = upstream(1, 1, algorithm="consistent_hash")
    assert [balanced.choose(None, now=0.0) for _ in range(4)] == [0, 1, 0, 1]


def test_a_retry_excludes_the_targets_already_tried() -> None:
    for algorithm in ("round_robin", "least_requests", "consistent_hash"):
        balanced = upstream(1, 1, 1, algorithm=algorithm)
        first = balanced.choose("k", now=0.0)
        assert first is not None
        second = balanced.choose("k", [first], now=0.0)
        third = balanced.choose("k", [first, second], now=0.0)  # type: ignore[list-item]
        assert len({first, second, third}) == 3
        assert balanced.choose("k", [0, 1, 2], now=0.0) is None


def test_every_target_ejected_picks_none_and_says_when_to_retry() -> None:
    balanced = upstream(1, 1)
    balanced.circuits[0].open(100.0)
    balanced.circuits[1].open(103.0)
    assert balanced.choose(now=104.0) is None
    assert balanced.retry_after(104.0) == pytest.approx(6.0)
    assert balanced.choose(now=111.0) == 0  # the first one's ejection ended: it is the probe


@pytest.mark.parametrize(
    "spec",
    [
        {"algorithm": "random"},
        {"algorithm": "consistent_hash", "hash_on": "header"},
        {"hash_on": "cookie"},
        {"breaker": {"window": 0}},
        {"breaker": {"ejection": 10, "max_ejection": 5}},
        {"health_check": {"path": "healthz"}},
        {"retry_budget": {"ratio": -1}},
    ],
)
def test_bad_upstream_settings_do_not_compile(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        upstream(1, **spec)


def test_a_recompiled_upstream_keeps_its_running_state() -> None:
    old = upstream(1, 1, algorithm="least_requests")
    old.inflight[0] = 7
    old.retry_budget.request(0.0)
    new = upstream(1, 1, algorithm="least_requests")
    new.inherit(old)
    assert new.inflight is old.inflight  # requests still running on the old snapshot count down here
    assert new.retry_budget is old.retry_budget
    changed = upstream(1, 1, 1, algorithm="least_requests")
    changed.inherit(old)
    assert changed.inflight == [0, 0, 0]
