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

from proxy.gateway.ratelimit import (
    RATE_PERIODS,
    SCRIPT,
    Check,
    Decision,
    Limiter,
    LocalLimiter,
    Rule,
    ScriptArgs,
    quota_window,
)
from proxy.gateway.redis_protocol import ScriptConnection
from proxy.gateway.vocabulary import RedisKeys
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


PERIOD_OF_WINDOW = {window: period for period, (window, _bucket) in RATE_PERIODS.items()}
Limit = tuple[str, str, int, int, int]


def script_call(
    ns: str,
    now_ms: int,
    checks: list[list[Limit]],
    usage_prefix: str = "",
    deltas: tuple[tuple[str, int], ...] = (),
) -> tuple[list[str], list[Any]]:
    """One script call for ``checks`` (requests, in order), each a list of limits: (key, kind,
    limit, window_ms or reset_at_ms, bucket_ms), built by the gateway's own ScriptArgs."""
    call = ScriptArgs(ns + "usage", now_ms, now_ms // 1000)
    for limits in checks:
        pairs: list[int] = []
        for key, kind, limit, p1, _p2 in limits:
            number = call.index.get(ns + key)
            if number is None:
                if kind == "r":
                    number = call.rate_key(ns + key, PERIOD_OF_WINDOW[p1])
                else:
                    number = call.quota_key(ns + key, p1 - now_ms)
            pairs += [number, limit]
        call.check(usage_prefix, "", pairs)
    return call.keys, call.argv(deltas)


def run(
    r: redis.Redis,
    ns: str,
    now_ms: int,
    limits: list[Limit],
    usage_prefix: str = "",
    deltas: tuple[tuple[str, int], ...] = (),
) -> list[int]:
    """One request in a call of its own: its five integers."""
    keys, args = script_call(ns, now_ms, [limits], usage_prefix, deltas)
    return [int(x) for x in r.eval(SCRIPT, len(keys), *keys, *args)]


def run_batch(
    r: redis.Redis, ns: str, now_ms: int, checks: list[list[Limit]], usage_prefix: str = ""
) -> list[list[int]]:
    """Several requests in one call: five integers each."""
    keys, args = script_call(ns, now_ms, checks, usage_prefix)
    flat = [int(x) for x in r.eval(SCRIPT, len(keys), *keys, *args)]
    return [flat[i : i + 5] for i in range(0, len(flat), 5)]


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


def state(r: redis.Redis, ns: str) -> dict[str, Any]:
    """Every key of a test namespace, without it: what the script left in Redis."""
    out: dict[str, Any] = {}
    for key in r.scan_iter(match=ns + "*"):
        name = key.decode()[len(ns) :]
        out[name] = r.hgetall(key) if r.type(key) == b"hash" else r.get(key)
        out[name + " ttl"] = r.pttl(key) > 0
    return out


def test_a_batch_decides_and_counts_exactly_as_one_call_per_request(r: redis.Redis, ns: str) -> None:
    """The gateway sends the requests of one round trip as one call (redisbatch.py): each must get
    the reply, and leave the counts, it would have had alone — refusals, Retry-After, tightest
    limit, bucket slides and usage included."""
    second = ("s", "r", 4, 1_000, 100)
    minute = ("m", "r", 9, 60_000, 1_000)
    quota = ("q", "q", 15, 86_400_000, 0)
    other = ("o", "r", 3, 1_000, 100)
    kinds = [[second, minute, quota], [minute, quota], [other], [second, other], [quota]]
    alone, batched = ns + "alone:", ns + "batched:"
    # Earlier traffic in the window (so refusals have old buckets to wait for), identical in both.
    for t in (1_000, 1_050, 30_000, 59_950):
        for target in (alone, batched):
            run(r, target, t, [second, minute, quota], usage_prefix="h|1|1||1|p")
    for now in (60_020, 60_500, 61_010, 120_700):  # later batches slide buckets out
        checks = [kinds[(i * 7 + now) % len(kinds)] for i in range(12)]
        expected = [run(r, alone, now, limits, usage_prefix="h|1|1||1|p") for limits in checks]
        assert run_batch(r, batched, now, checks, usage_prefix="h|1|1||1|p") == expected
        assert any(reply[0] == 0 for reply in expected) and any(reply[0] == 1 for reply in expected)
    assert state(r, alone) == state(r, batched)


def test_retry_after_in_a_batch_counts_the_batch_s_own_requests(r: redis.Redis, ns: str) -> None:
    # A limit lowered between two requests of one batch (a configuration change): the refused
    # one must wait until the requests counted earlier in the same call leave the window too.
    wide, narrow = ("s", "r", 10, 1_000, 100), ("s", "r", 3, 1_000, 100)
    run(r, ns, 500, [wide])
    replies = run_batch(r, ns, 1_020, [[wide]] * 4 + [[narrow]])
    assert [reply[0] for reply in replies] == [1, 1, 1, 1, 0]
    assert replies[-1][3] == (10 + 10) * 100 - 1_020  # when the current bucket leaves, not bucket 5


def test_a_batch_counts_the_usage_of_each_request_and_its_deltas(r: redis.Redis, ns: str) -> None:
    one = ("one", "r", 2, 60_000, 1_000)
    keys, args = script_call(ns, 5_000, [[one]] * 3, "h|1|2|3|p", (("h|1|2|3|p|2xx", 2), ("h|1|2|3|p|lat_ms", 30)))
    assert [int(x) for x in r.eval(SCRIPT, len(keys), *keys, *args)][::5] == [1, 1, 0]
    usage = {k.decode(): int(v) for k, v in r.hgetall(ns + "usage").items()}
    assert usage == {"h|1|2|3|p|req": 3, "h|1|2|3|p|429": 1, "h|1|2|3|p|2xx": 2, "h|1|2|3|p|lat_ms": 30}


def test_a_backlog_is_split_into_calls_of_bounded_size_in_one_round_trip(ns: str) -> None:
    # 450 requests queued at once: three script calls (200 + 200 + 50), one write and one read,
    # every request answered in the order it came, as if each had had its own call.
    rule = Rule("plan:minute", "r", "minute", 1_000)

    writes: list[int] = []  # script calls per round trip

    class Counting(ScriptConnection):
        async def execute(self, commands: Any) -> list[Any]:
            writes.append(len(commands))
            return await super().execute(commands)

    async def scenario() -> list[Any]:
        limiter = Limiter(Counting(os.environ["REDIS_URL"]), RedisKeys(ns))
        check = Check([ns + "backlog"], [rule], "", "")
        replies = await asyncio.gather(*(limiter.batcher.call(check) for _ in range(450)))
        limiter.conn.close()
        return replies

    replies = asyncio.run(scenario())
    assert writes == [3]
    assert [reply[2] for reply in replies] == list(range(999, 549, -1))  # remaining, in order
    assert all(reply[0] == 1 for reply in replies)


def test_a_request_the_script_cannot_take_fails_its_batch_and_nothing_waits(ns: str) -> None:
    # A rule no window exists for (a bug): its batch gets the error, its usage deltas go back to
    # the pending ones, and the next batch is served.
    limiter = Limiter(ScriptConnection(os.environ["REDIS_URL"]), RedisKeys(ns))
    bad = Check([ns + "bad"], [Rule("route:fortnight", "r", "fortnight", 1)], "", "")
    good = Check([ns + "good"], [Rule("route:minute", "r", "minute", 5)], "", "")

    async def scenario() -> tuple[list[Any], list[Any]]:
        limiter._add("", "h|1|1||1|p|2xx", 3)
        first = await asyncio.wait_for(
            asyncio.gather(limiter.batcher.call(bad), limiter.batcher.call(good), return_exceptions=True), 5
        )
        second = await asyncio.wait_for(asyncio.gather(limiter.batcher.call(good)), 5)
        limiter.conn.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert all(isinstance(reply, KeyError) for reply in first)
    assert [int(x) for x in second[0]] == [1, 1, 4, 60_000, 5]
    # The deltas went back, then rode with the second batch: nothing lost.
    assert redis.Redis.from_url(os.environ["REDIS_URL"]).hget(ns + "usage", "h|1|1||1|p|2xx") == b"3"


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
        batcher = Limiter(ScriptConnection(server.url), RedisKeys("t:")).batcher
        nothing = Check([], [], "", "")  # no limit, no usage: the script answers "admitted"
        first = await asyncio.gather(*(batcher.call(nothing) for _ in range(5)))
        await client.script_flush()  # what a restart or SCRIPT FLUSH does
        second = await asyncio.gather(*(batcher.call(nothing) for _ in range(5)))
        await client.aclose()
        return [first, second, batcher.batches]

    try:
        first, second, batches = asyncio.run(scenario())
    finally:
        server.stop()
    assert first == second == [[1, 0, -1, 0, 0]] * 5
    assert batches == 2  # five concurrent calls shared one pipeline, twice
