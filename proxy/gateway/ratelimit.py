"""Phase 3, limit: every limit that applies, checked and counted in one atomic Redis call.

Limits of one request (any combination):
- the plan's rate limits (second / minute / hour) and quotas (day / month), counted per key or
  per partner as the plan says, separately for each product;
- the route's own rate limits, per caller (the key, the partner for JWT callers, or the client
  IP on public routes).

The same call counts the request in the usage hash (see usage fields below). Refused requests
consume no limit and no quota. When Redis cannot be reached the configured policy applies:
``local`` admits by an in-process limiter (limits then hold per instance, not cluster-wide)
and keeps usage counts in memory until Redis is back; ``deny`` answers 503 limiter_unavailable.

Usage fields (hash ``{p}<tag>usage``, one per hash tag on a cluster: vocabulary.RedisKeys):
``<hour>|<partner>|<key>|<route>|<product>|<metric>`` with
metric ``req`` (admitted or refused, counted in the limiter call), ``429``, ``2xx`` … ``5xx``
and ``lat_ms`` (added when the response is done, carried by a later call), and
``last|<key>`` = the key's last-used time. proxy/usage.py moves them into the database.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from proxy.gateway.context import RequestContext
from proxy.gateway.errors import ServiceUnavailable, TooManyRequests
from proxy.gateway.redisbatch import Deltas, ScriptBatcher, ScriptTransport
from proxy.gateway.vocabulary import RedisKeys

log = logging.getLogger("apigw.ratelimit")

SCRIPT = (Path(__file__).with_name("ratelimit.lua")).read_text()
# (window, bucket) in ms: the count is exact to within one bucket at the window's trailing edge.
RATE_PERIODS = {"second": (1_000, 100), "minute": (60_000, 1_000), "hour": (3_600_000, 60_000)}
QUOTA_PERIODS = ("day", "month")
POLICIES = ("local", "deny")
# After a failed call, skip Redis for this long (no per-request wait on a dead server), then retry.
_DOWN_BACKOFF = 1.0


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # "plan:minute", "route:second", "plan:day" …
    kind: str  # "r" rate, "q" quota
    period: str
    limit: int

    @property
    def code(self) -> str:
        return "quota_exceeded" if self.kind == "q" else "rate_limited"


def rate_rules(owner: str, limits: Mapping[str, int]) -> tuple[Rule, ...]:
    return tuple(Rule(f"{owner}:{p}", "r", p, int(limits[p])) for p in RATE_PERIODS if limits.get(p))


def quota_rules(owner: str, quotas: Mapping[str, int]) -> tuple[Rule, ...]:
    return tuple(Rule(f"{owner}:{p}", "q", p, int(quotas[p])) for p in QUOTA_PERIODS if quotas.get(p))


def quota_window(period: str, now: float) -> tuple[str, float]:
    """The calendar window (UTC) that ``now`` falls in: its id and its end (epoch seconds)."""
    return _calendar_window(period, now)[1:]


def _calendar_window(period: str, now: float) -> tuple[float, str, float]:
    t = time.gmtime(now)
    if period == "day":
        start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
        return start, time.strftime("%Y%m%d", t), start + 86_400
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
    return start, time.strftime("%Y%m", t), calendar.timegm((year, month, 1, 0, 0, 0))


# period → (start, id, end) of the window last asked for: a day's id is formatted once a day,
# not once a request.
_windows: dict[str, tuple[float, str, float]] = {}


def current_quota_window(period: str, now: float) -> tuple[str, float]:
    """``quota_window``, remembered until the window ends (the limiter asks per request)."""
    window = _windows.get(period)
    if window is None or not window[0] <= now < window[2]:
        window = _windows[period] = _calendar_window(period, now)
    return window[1], window[2]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: Rule | None
    limit: int
    remaining: int
    reset: float  # seconds until the tightest limit has room again

    def headers(self) -> list[tuple[bytes, bytes]]:
        reset = str(max(0, math.ceil(self.reset))).encode()
        headers = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(max(0, self.remaining)).encode()),
            (b"ratelimit-reset", reset),
        ]
        if not self.allowed:
            headers.append((b"retry-after", reset))
        return headers


@dataclass(slots=True)
class Check:
    """What one request asks of the limiter: the Redis keys and rules, and its usage field.
    ``tag``: the hash tag every key carries (and so the usage hash it counts in); ``ends``: each
    quota key's window end (epoch ms), so the reset belongs to the window the key counts."""

    keys: list[str]
    rules: list[Rule]
    usage_prefix: str
    last_used_field: str
    tag: str = ""
    ends: dict[str, int] | None = None


class ScriptArgs:
    """KEYS and ARGV of one ratelimit.lua call, in the layout the script describes: each limit
    key once (with what its window needs), then the requests in order, then usage deltas."""

    __slots__ = ("keys", "index", "_key_args", "_check_args", "_checks", "now_ms", "now_s")

    def __init__(self, usage_key: str, now_ms: int, now_s: int) -> None:
        self.keys = [usage_key]
        self.index: dict[str, int] = {}  # limit key → its number in the script (KEYS[1 + n])
        self._key_args: list[Any] = []
        self._check_args: list[Any] = []
        self._checks = 0
        self.now_ms, self.now_s = now_ms, now_s

    def rate_key(self, key: str, period: str) -> int:
        window, bucket = RATE_PERIODS[period]
        return self._key(key, "r", window, bucket, self.now_ms // bucket)

    def quota_key(self, key: str, ms_until_reset: int) -> int:
        return self._key(key, "q", max(0, ms_until_reset), 0, 0)

    def _key(self, key: str, *spec: Any) -> int:
        self.keys.append(key)
        number = self.index[key] = len(self.keys) - 1
        self._key_args += spec
        return number

    def check(self, usage_prefix: str, last_used_field: str, limits: list[int]) -> None:
        """One request: ``limits`` flat (key number, limit) pairs, in the order of its rules."""
        self._check_args += (usage_prefix, last_used_field, len(limits) // 2, *limits)
        self._checks += 1

    def argv(self, deltas: Sequence[tuple[str, int]] = ()) -> list[Any]:
        args: list[Any] = [self.now_ms, self.now_s, len(self.keys) - 1, *self._key_args, self._checks]
        args += self._check_args
        for field, value in deltas:
            args.append(field)
            args.append(value)
        return args


def rate_window(buckets: Mapping[int, int], rule: Rule, now_ms: int) -> tuple[int, int]:
    """A sliding window's count and the ms until one more request fits, from its sub-buckets
    (bucket index → count; buckets that left the window are ignored). ratelimit.lua computes
    the same inside Redis; this is the one Python copy (the fail-open limiter, explain)."""
    window, bucket_ms = RATE_PERIODS[rule.period]
    buckets_per_window = window // bucket_ms
    oldest_live = now_ms // bucket_ms - buckets_per_window + 1
    live = sorted((i, c) for i, c in buckets.items() if i >= oldest_live)
    count = sum(c for _, c in live)
    reset_ms = (live[0][0] + buckets_per_window) * bucket_ms - now_ms if live else window
    need, freed = count + 1 - rule.limit, 0
    for index, used in live:  # time until enough old buckets leave for one more to fit
        freed += used
        if need > 0 and freed >= need:
            reset_ms = (index + buckets_per_window) * bucket_ms - now_ms
            break
    return count, reset_ms


def window_buckets(fields: Mapping[Any, Any]) -> dict[int, int]:
    """A window's sub-buckets from its hash (ratelimit.lua: bucket index → count, beside the
    script's own ``t``/``o``/``l`` fields)."""
    buckets = {}
    for raw, count in fields.items():
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        if name.isdigit():
            buckets[int(name)] = int(count)
    return buckets


def quota_reset_ms(rule: Rule, now: float) -> int:
    return int(quota_window(rule.period, now)[1] * 1000) - int(now * 1000)


class LocalLimiter:
    """The same sliding-window rules, in this process only: the fail-open fallback."""

    def __init__(self) -> None:
        self._rates: dict[str, dict[int, int]] = {}
        self._quotas: dict[str, int] = {}

    def check(self, keys: list[str], rules: list[Rule], now: float) -> Decision:
        best: Decision | None = None
        now_ms = int(now * 1000)
        counts: list[tuple[str, Rule, int]] = []
        for key, rule in zip(keys, rules, strict=True):
            if rule.kind == "r":
                window, bucket_ms = RATE_PERIODS[rule.period]
                buckets = self._rates.setdefault(key, {})
                current = now_ms // bucket_ms
                for idx in [i for i in buckets if i <= current - window // bucket_ms]:
                    del buckets[idx]
                count, reset_ms = rate_window(buckets, rule, now_ms)
                counts.append((key, rule, current))
            else:
                count = self._quotas.get(key, 0)
                reset_ms = quota_reset_ms(rule, now)
                counts.append((key, rule, 0))
            remaining = rule.limit - count - 1
            if remaining < 0:
                return Decision(False, rule, rule.limit, 0, reset_ms / 1000)
            if best is None or remaining < best.remaining:
                best = Decision(True, rule, rule.limit, remaining, reset_ms / 1000)
        for key, rule, bucket in counts:
            if rule.kind == "r":
                self._rates[key][bucket] = self._rates[key].get(bucket, 0) + 1
            else:
                self._quotas[key] = self._quotas.get(key, 0) + 1
        return best or Decision(True, None, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class LimitState:
    """One limit as the limiter would see it before counting this request (explain)."""

    key: str
    rule: Rule
    used: int | None  # None: Redis could not be read
    reset_ms: int = 0
    error: str = ""

    @property
    def remaining(self) -> int | None:
        return None if self.used is None else max(0, self.rule.limit - self.used)

    @property
    def would_refuse(self) -> bool | None:
        return None if self.used is None else self.used >= self.rule.limit


class LimitPeek:
    """The limiter's read half, for dry runs: reads the counters of a ``Check``, counts nothing
    (expired rate buckets are skipped, not deleted). Takes a synchronous redis-py client: the
    control plane runs explain in a worker thread."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, check: Check, now: float) -> list[LimitState]:
        now_ms = int(now * 1000)
        states = []
        for key, rule in zip(check.keys, check.rules, strict=True):
            try:
                if rule.kind == "r":
                    raw = self.client.hgetall(key)
                    count, reset_ms = rate_window(window_buckets(raw), rule, now_ms)
                else:
                    count, reset_ms = int(self.client.get(key) or 0), quota_reset_ms(rule, now)
            except (RedisError, OSError) as exc:
                states.append(LimitState(key, rule, None, error=f"Redis unreachable: {type(exc).__name__}"))
                continue
            states.append(LimitState(key, rule, count, max(0, reset_ms)))
        return states


class Limiter:
    def __init__(self, conn: ScriptTransport, keys: RedisKeys, policy: str = "local") -> None:
        if policy not in POLICIES:
            raise ValueError(f"limiter policy must be one of {POLICIES}, got {policy!r}")
        self.conn = conn
        self.keys = keys
        self.policy = policy
        # tag → usage field → delta not yet in Redis (each tag's go to its own usage hash)
        self.pending: dict[str, dict[str, int]] = {}
        self.local = LocalLimiter()
        self.batcher = ScriptBatcher(conn, SCRIPT, self._encode, self._take_deltas, self._return_deltas)
        # On a cluster a dead primary fails only its own calls (and the connection backs off from
        # it alone): the others' limits stay exact, so the limiter never backs off from all.
        self._backs_off = not getattr(conn, "fails_alone", False)
        self._down_until = 0.0
        # key's last-used field → the second last sent: a key's last-used time is written once a
        # second, not once a request (a command less inside Redis for most requests).
        self._last_used_sent: dict[str, int] = {}
        self.degraded = False  # True while Redis is unreachable
        self._task: asyncio.Task[None] | None = None

    # -- usage deltas ---------------------------------------------------------------------------
    def _take_deltas(self, tag: str, limit: int) -> Deltas:
        pending = self.pending.get(tag)
        if not pending:
            self.pending.pop(tag, None)
            return []
        if len(pending) <= limit:
            del self.pending[tag]
            return list(pending.items())
        taken = []
        for field in list(pending)[:limit]:
            taken.append((field, pending.pop(field)))
        return taken

    def _return_deltas(self, tag: str, deltas: Deltas) -> None:
        pending = self.pending.setdefault(tag, {})
        for field, value in deltas:
            pending[field] = pending.get(field, 0) + value

    def _add(self, tag: str, field: str, value: int = 1) -> None:
        pending = self.pending.get(tag)
        if pending is None:
            pending = self.pending[tag] = {}
        pending[field] = pending.get(field, 0) + value

    def record_response(self, ctx: RequestContext) -> None:
        """After the response: its status class and latency, sent with a later limiter call."""
        prefix = ctx.usage_prefix
        if not prefix or ctx.limit_outcome in ("rate_limited", "quota_exceeded") or ctx.identity is None:
            return
        tag = self.keys.partner_tag(ctx.identity.partner.id) if self.keys.cluster else ""
        status = ctx.status
        if 200 <= status < 600:
            self._add(tag, f"{prefix}|{status // 100}xx")
        self._add(tag, f"{prefix}|lat_ms", int((time.perf_counter() - ctx.started) * 1000))

    # -- the check ------------------------------------------------------------------------------
    def _encode(self, tag: str, checks: list[Check], deltas: Deltas) -> tuple[list[str], list[Any]]:
        # Timed when the batch is sent: the decisions are taken at the time Redis sees them.
        return self.script_call(tag, checks, deltas, time.time())

    def script_call(self, tag: str, checks: list[Check], deltas: Deltas, now: float) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one script call for the requests of a batch under ``tag``."""
        now_ms, second = int(now * 1000), int(now)
        call = ScriptArgs(self.keys.usage_key(tag), now_ms, second)
        index = call.index
        for check in checks:
            limits: list[int] = []
            for key, rule in zip(check.keys, check.rules, strict=True):
                number = index.get(key)
                if number is None:
                    if rule.kind == "r":
                        number = call.rate_key(key, rule.period)
                    else:
                        end = check.ends[key] if check.ends else int(current_quota_window(rule.period, now)[1] * 1000)
                        number = call.quota_key(key, end - now_ms)
                limits.append(number)
                limits.append(rule.limit)
            call.check(check.usage_prefix, self._last_used(check.last_used_field, second), limits)
        return call.keys, call.argv(deltas)

    def _last_used(self, field: str, second: int) -> str:
        """A key's last-used time is written once a second, not once a request."""
        if not field or self._last_used_sent.get(field) == second:
            return ""
        if len(self._last_used_sent) > 100_000:  # bounded: forget, at worst write again
            self._last_used_sent.clear()
        self._last_used_sent[field] = second
        return field

    async def check(self, ctx: RequestContext, check: Check) -> None:
        """Apply the limits; sets the RateLimit headers, raises 429 or 503 when refused."""
        ctx.usage_prefix = check.usage_prefix
        if not check.rules and not check.usage_prefix:
            return
        decision: Decision | None = None
        if time.monotonic() >= self._down_until:
            try:
                reply = await self.batcher.call(check, check.tag)
                decision = self._decision(reply, check.rules)
                if self.degraded:
                    self.degraded = False
                    log.warning("limiter: Redis reachable again, cluster-wide limits restored")
            except (RedisError, OSError) as exc:
                if self._backs_off:
                    self._down_until = time.monotonic() + _DOWN_BACKOFF
                if not self.degraded:
                    self.degraded = True
                    log.error("limiter: Redis unreachable (%s); policy %s", type(exc).__name__, self.policy)
        if decision is None:
            decision = self._fallback(ctx, check, time.time())
        if check.rules:
            ctx.response_headers.extend(decision.headers())
        if decision.allowed:
            ctx.limit_outcome = ctx.limit_outcome or "allowed"
            return
        assert decision.rule is not None
        ctx.limit_outcome = decision.rule.code
        message = (
            "The quota for this period is used up." if decision.rule.kind == "q" else "Too many requests; slow down."
        )
        raise TooManyRequests(f"{message} Limit: {decision.rule.name} {decision.limit}.", code=decision.rule.code)

    def _decision(self, reply: list[Any], rules: list[Rule]) -> Decision:
        allowed, index, remaining, reset_ms, limit = (int(x) for x in reply)
        rule = rules[index - 1] if index else None
        return Decision(bool(allowed), rule, limit, remaining, reset_ms / 1000)

    def _fallback(self, ctx: RequestContext, check: Check, now: float) -> Decision:
        if self.policy == "deny":
            ctx.limit_outcome = "limiter_unavailable"
            raise ServiceUnavailable(
                "Rate limiting is unavailable; try again shortly.",
                code="limiter_unavailable",
                headers=[(b"retry-after", b"1")],
            )
        ctx.limit_outcome = "local"
        decision = self.local.check(check.keys, check.rules, now)
        # Counted here, sent to Redis by the first call that succeeds: nothing is lost.
        if check.usage_prefix:
            self._add(check.tag, f"{check.usage_prefix}|req")
            if not decision.allowed:
                self._add(check.tag, f"{check.usage_prefix}|429")
        return decision

    # -- background flush of deltas when traffic is idle ---------------------------------------
    async def start(self) -> None:
        # Load the script (on every primary of a cluster) and read the slot map before traffic:
        # the first requests must not spend their deadline on NOSCRIPT and retries. Redis may be
        # down now; the first call then does it.
        with contextlib.suppress(RedisError, OSError):
            await self.conn.load_script(SCRIPT)
        self._task = asyncio.create_task(self._flush_idle(), name="usage-deltas")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> bool:
        """Send pending usage deltas now (used when idle and at shutdown): one call per tag."""
        if not self.pending:
            return True
        calls = [self.batcher.call(None, tag) for tag in list(self.pending)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        return not any(isinstance(result, BaseException) for result in results)

    async def _flush_idle(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self.pending and self.batcher.idle and time.monotonic() >= self._down_until:
                await self.flush()
