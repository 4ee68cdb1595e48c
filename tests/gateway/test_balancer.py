"""Target parsing and the smooth weighted round-robin (proxy/gateway/balancer.py)."""

from __future__ import annotations

from collections import Counter
from itertools import groupby, pairwise

import pytest

from proxy.gateway.balancer import Target, Upstream, smooth_weighted_schedule


def upstream(*weights: int) -> Upstream:
    return Upstream(
        {
            "name": "u",
            "targets": [{"url": f"http://10.0.0.{i + 1}:8000", "weight": w} for i, w in enumerate(weights)],
        }
    )


def longest_run(schedule: list[int]) -> int:
    return max(len(list(run)) for _, run in groupby(schedule))


# --- the schedule -----------------------------------------------------------------------------


def test_smooth_weighted_schedule_spreads_5_1_1_smoothly() -> None:
    assert smooth_weighted_schedule([5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0]


def test_smooth_weighted_schedule_never_sends_a_long_burst_to_one_target() -> None:
    schedule = smooth_weighted_schedule([5, 1, 1])
    assert longest_run(schedule) == 2
    schedule = smooth_weighted_schedule([1, 1, 1, 1])
    assert schedule == [0, 1, 2, 3]


def test_smooth_weighted_schedule_gives_each_target_its_weight() -> None:
    schedule = smooth_weighted_schedule([3, 2, 5])
    assert Counter(schedule) == {0: 3, 1: 2, 2: 5}
    assert len(schedule) == 10


def test_smooth_weighted_schedule_reduces_weights_by_their_gcd() -> None:
    assert smooth_weighted_schedule([100, 100]) == [0, 1]
    assert Counter(smooth_weighted_schedule([10, 20, 30])) == {0: 1, 1: 2, 2: 3}


def test_weights_95_5_over_10000_picks_give_exactly_the_ratio() -> None:
    schedule = smooth_weighted_schedule([95, 5])
    assert len(schedule) == 20
    balanced = upstream(95, 5)
    counts = Counter(balanced.pick() for _ in range(10_000))
    first, second = balanced.targets
    assert counts == {first: 9_500, second: 500}


def test_the_canary_share_arrives_evenly() -> None:
    balanced = upstream(95, 5)
    canary = balanced.targets[1]
    picks = [balanced.pick() for _ in range(200)]
    positions = [i for i, target in enumerate(picks) if target == canary]
    assert len(positions) == 10
    assert {b - a for a, b in pairwise(positions)} == {20}


def test_weight_zero_target_is_never_picked() -> None:
    assert 1 not in smooth_weighted_schedule([3, 0, 2])
    balanced = upstream(3, 0, 2)
    drained = balanced.targets[1]
    counts = Counter(balanced.pick() for _ in range(10_000))
    assert drained not in counts
    assert counts == {balanced.targets[0]: 6_000, balanced.targets[2]: 4_000}


def test_negative_weights_count_as_zero() -> None:
    assert smooth_weighted_schedule([-5, 2]) == [1]


@pytest.mark.parametrize("weights", [[], [0], [0, 0, 0], [-1, 0]])
def test_no_positive_weight_gives_an_empty_schedule(weights: list[int]) -> None:
    assert smooth_weighted_schedule(weights) == []


def test_upstream_without_live_targets_picks_nothing() -> None:
    assert upstream(0, 0).pick() is None
    assert Upstream({"name": "empty", "targets": []}).pick() is None
    assert Upstream({"name": "none"}).pick() is None


def test_very_large_weights_are_scaled_to_a_short_schedule_with_close_shares() -> None:
    schedule = smooth_weighted_schedule([700_001, 299_999])
    assert len(schedule) == 1000
    assert Counter(schedule) == {0: 700, 1: 300}

    schedule = smooth_weighted_schedule([999_999, 1])
    assert len(schedule) <= 1001
    counts = Counter(schedule)
    assert counts[1] >= 1  # a tiny weight is scaled down, never to zero
    assert abs(counts[1] / len(schedule) - 1 / 1_000_000) <= 1 / 1000


def test_upstream_pick_cycles_through_the_schedule() -> None:
    balanced = upstream(5, 1, 1)
    a, b, c = balanced.targets
    expected = [a, a, b, a, c, a, a]
    assert [balanced.pick() for _ in range(14)] == expected * 2


def test_upstream_keeps_its_timeouts() -> None:
    spec = {"name": "slow", "targets": [{"url": "http://h:1"}], "connect_timeout": 0.5, "read_timeout": 3.0}
    compiled = Upstream(spec)
    assert (compiled.name, compiled.connect_timeout, compiled.read_timeout) == ("slow", 0.5, 3.0)
    assert compiled.targets[0].weight == 1


# --- targets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.com",
        "ftp://files.example.com:21",
        "ws://example.com",
        "http://",
        "https://",
        "http:///path",
        "https://:8443",
        "example.com:8000",
        "//example.com",
        "",
        "http://example.com:99999",
        "http://example.com:port",
    ],
)
def test_target_parse_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        Target.parse(url)


def test_target_parse_accepts_ipv6_literals() -> None:
    target = Target.parse("http://[::1]:8001")
    assert (target.scheme, target.host, target.port) == ("http", "[::1]", 8001)
    assert target.authority == "[::1]:8001"
    assert target.url == "http://[::1]:8001"


def test_target_parse_defaults_the_port_from_the_scheme() -> None:
    assert Target.parse("http://api.internal").port == 80
    assert Target.parse("https://api.internal").port == 443
    assert Target.parse("https://[2001:db8::1]").authority == "[2001:db8::1]:443"


def test_target_parse_keeps_host_port_and_weight() -> None:
    target = Target.parse("https://API.Internal:9443/", weight="7")  # type: ignore[arg-type]
    assert target == Target("https://API.Internal:9443", "https", "api.internal", 9443, 7)
    assert target.authority == "api.internal:9443"
