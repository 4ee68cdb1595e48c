"""The limiter script's semantics, driven with chosen clocks against a real Redis."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from proxy.gateway.ratelimit import SCRIPT, Decision, LocalLimiter, Rule, quota_window
from proxy.gateway.redis_protocol import ScriptConnection
from proxy.gateway.redisbatch import ScriptBatcher
from tests.servers import RedisServer


@pytest.fixture
def r() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    client.close()


@pytest.fixture
def ns(r: redis.Redis) -> Iterator[str]:
    prefix = f"{os.environ['REDIS_PREFIX']}rl-test-{uuid.uuid4().hex[:6]}:"
    yield prefix
    for key in r.scan_iter(match=prefix + "*"):
        r.delete(key)


def run(
    r: redis.Redis,
    ns: str,
    now_ms: int,
    limits: list[tuple[str, str, int, int, int]],
    usage_prefix: str = "",
    deltas: tuple[tuple[str, int], ...] = (),
) -> list[int]:
    """limits: (key, kind, limit, window_ms or reset_at_ms, bucket_ms)."""
    keys = [ns + key for key, *_ in limits] + [ns + "usage"]
    args: list[Any] = [now_ms, len(limits)]
    for _, kind, limit, p1, p2 in limits:
        args += [kind, limit, p1, p2]
    args += [usage_prefix, "", now_ms // 1000]
    for field, value in deltas:
        args += [field, value]
    return [int(x) for x in r.eval(SCRIPT, len(keys), *keys, *args)]


MINUTE = ("m", "r", 60, 60_000, 1_000)


def test_it_admits_up_to_the_limit_and_counts_down(r: redis.Redis, ns: str) -> None:
    replies = [run(r, ns, 1_000_000 + i, [MINUTE]) for i in range(61)]
    assert [x[0] for x in replies] == [1] * 60 + [0]
    assert [x[2] for x in replies[:3]] == [59, 58, 57]
    assert replies[-1][1] == 1  # the refusing limit's index


def test_a_window_boundary_does_not_double_the_limit(r: redis.Redis, ns: str) -> None:
    # 60 requests at 59.5 s: a fixed window would admit 60 more at 60.5 s.
    for _ in range(60):
        assert run(r, ns, 59_500, [MINUTE])[0] == 1
    refused = run(r, ns, 60_500, [MINUTE])
    assert refused[0] == 0
    assert refused[3] == 58_500  # ms until the 59.5 s bucket leaves the window
    assert run(r, ns, 118_999, [MINUTE])[0] == 0
    assert run(r, ns, 119_000, [MINUTE])[0] == 1


def test_a_refused_request_consumes_nothing(r: redis.Redis, ns: str) -> None:
    second = ("s", "r", 2, 1_000, 100)
    quota = ("q", "q", 100, 86_400_000, 0)
    assert run(r, ns, 5_000, [second, quota])[0] == 1
    assert run(r, ns, 5_001, [second, quota])[0] == 1
    for _ in range(5):
        assert run(r, ns, 5_002, [second, quota])[0] == 0
    assert int(r.get(ns + "q")) == 2


def test_the_tightest_limit_is_reported(r: redis.Redis, ns: str) -> None:
    hour = ("h", "r", 1000, 3_600_000, 60_000)
    reply = run(r, ns, 0, [hour, ("m2", "r", 5, 60_000, 1_000)])
    assert reply[1:] == [2, 4, 60_000, 5]


def test_a_quota_resets_at_the_end_of_its_window(r: redis.Redis, ns: str) -> None:
    reset_at = 86_400_000
    assert run(r, ns, 1_000, [("day", "q", 1, reset_at, 0)])[0] == 1
    refused = run(r, ns, 2_000, [("day", "q", 1, reset_at, 0)])
    assert refused[0] == 0 and refused[3] == reset_at - 2_000


def test_usage_is_counted_with_the_decision_and_deltas_ride_along(r: redis.Redis, ns: str) -> None:
    one = ("one", "r", 1, 60_000, 1_000)
    run(r, ns, 0, [one], usage_prefix="h|1|2|3|p")
    run(r, ns, 1, [one], usage_prefix="h|1|2|3|p", deltas=(("h|1|2|3|p|2xx", 1), ("h|1|2|3|p|lat_ms", 12)))
    usage = {k.decode(): int(v) for k, v in r.hgetall(ns + "usage").items()}
    assert usage == {"h|1|2|3|p|req": 2, "h|1|2|3|p|429": 1, "h|1|2|3|p|2xx": 1, "h|1|2|3|p|lat_ms": 12}


def test_quota_windows_are_utc_calendar_days_and_months() -> None:
    assert quota_window("day", 1_796_000_000.0) == ("20261130", 1_796_083_200)
    assert quota_window("month", 1_796_000_000.0) == ("202611", 1_796_083_200)
    assert quota_window("month", 1_798_675_200.0 - 1) == ("202612", 1_798_761_600)


def test_decision_headers_follow_the_ietf_draft() -> None:
    refused = Decision(False, Rule("plan:minute", "r", "minute", 60), 60, 0, 12.2)
    assert refused.headers() == [
        (b"ratelimit-limit", b"60"),
        (b"ratelimit-remaining", b"0"),
        (b"ratelimit-reset", b"13"),
        (b"retry-after", b"13"),
    ]


def test_the_local_fallback_applies_the_same_rules() -> None:
    local = LocalLimiter()
    rules = [Rule("plan:second", "r", "second", 3)]
    decisions = [local.check(["k"], rules, 100.0 + i * 0.01) for i in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert local.check(["k"], rules, 101.1).allowed


def test_the_batcher_reloads_the_script_after_a_redis_restart() -> None:
    server = RedisServer().start()

    async def scenario() -> list[Any]:
        client = aioredis.Redis.from_url(server.url)
        returned: list[tuple[str, int]] = []
        batcher = ScriptBatcher(
            ScriptConnection(server.url), SCRIPT, lambda tag, n: [], lambda tag, d: returned.extend(d)
        )
        args = [0, 0, "", "", 0]
        first = await asyncio.gather(*(batcher.call(["u"], args) for _ in range(5)))
        await client.script_flush()  # what a restart or SCRIPT FLUSH does
        second = await asyncio.gather(*(batcher.call(["u"], args) for _ in range(5)))
        await client.aclose()
        return [first, second, batcher.batches]

    try:
        first, second, batches = asyncio.run(scenario())
    finally:
        server.stop()
    assert first == second == [[1, 0, -1, 0, 0]] * 5
    assert batches == 2  # five concurrent calls shared one pipeline, twice
