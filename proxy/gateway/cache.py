"""Response cache in Redis, shared by every instance; opt-in per route (``cache_ttl``).

Key: route, method, scheme, Host, the exact request target the upstream receives (canonical path
and query), the credential's holder (``identity.subject``: the API key, or the JWT's ``sub``;
``-`` for anonymous callers) and the values of the route's cache headers (plus the headers its
upstream rules look at, or a v2 caller could get a v1 answer). So a shared cache never serves
one credential's answer to another, nor an answer built from one Host (a redirect, say) to
another host. Requests with a ``Cookie`` bypass the cache unless the route keys on ``Cookie``:
whose session it is, the gateway cannot tell (RFC 9111 3.5).

Cost: on cache-enabled routes a lookup is one extra Redis round trip (MGET), not folded into the
limiter's script call (that script is the limiter's; a GET in it would tie the two features'
keys together and make every limiter call pay for the cache's value). It is *sent at the same
time* as the limiter call — after authentication, before the limit phase waits — so a hit costs
about one round trip of latency, not two; concurrent lookups share one MGET, the way
redisbatch.py shares the limiter's pipeline. Routes without a cache never touch it. A hit still
counts against limits and quotas. Stores happen after the response went out, fire-and-forget
and batched. Redis down: lookups are skipped (``X-Cache: BYPASS``) for a second at a time.

HTTP semantics (a shared cache, RFC 9111, simplified):
- only GET without ``Range``; request ``no-store`` bypasses, ``no-cache``/``max-age=0`` skip
  the lookup and refresh the entry;
- stored: statuses 200, 203, 204, 300, 301, 308, 404, 410, not ``no-store``/``no-cache``/
  ``private``, no ``Set-Cookie``, no ``Vary: *``, body within ``cache_max_bytes``;
- TTL: the route's, shortened by ``s-maxage`` or ``max-age``; Redis expires the entry;
- ``Vary``: list the varying headers in the route's cache headers so each variant gets its own
  entry; a header the upstream varies on that the key does not cover is checked on read (a
  mismatch is a miss), so a wrong variant is never served;
- ``X-Cache: HIT`` (with ``Age``), ``MISS`` or ``BYPASS``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from proxy.gateway.context import RequestContext
from proxy.gateway.redis_urls import AsyncClient, AsyncRedisCluster
from proxy.gateway.spec import CacheSpec
from proxy.gateway.vocabulary import RedisKeys

log = logging.getLogger("apigw.cache")

CACHEABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 410})
_MAGIC = b"AGC1"
_DOWN_BACKOFF = 1.0
_HIT, _MISS, _BYPASS = (b"x-cache", b"HIT"), (b"x-cache", b"MISS"), (b"x-cache", b"BYPASS")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    ttl: float
    max_bytes: int
    headers: tuple[str, ...]  # lower-case request headers that are part of the key

    @classmethod
    def from_spec(cls, spec: CacheSpec | None, extra_headers: Iterable[str] = ()) -> CachePolicy | None:
        if not spec or not spec.get("ttl"):
            return None
        ttl = float(spec["ttl"])
        max_bytes = int(spec.get("max_bytes") or 1024 * 1024)
        if ttl <= 0 or max_bytes <= 0:
            raise ValueError("cache ttl and max_bytes must be positive")
        names = {str(h).strip().lower() for h in [*(spec.get("headers") or ()), *extra_headers] if str(h).strip()}
        return cls(ttl, max_bytes, tuple(sorted(names)))


def directives(values: list[str] | None) -> dict[str, str]:
    """``Cache-Control`` as lower-case directive → argument ("" when it has none)."""
    out: dict[str, str] = {}
    for value in values or ():
        for part in value.split(","):
            name, _, argument = part.strip().partition("=")
            if name:
                out[name.lower()] = argument.strip().strip('"')
    return out


def _seconds(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


@dataclass(slots=True)
class Entry:
    status: int
    headers: list[tuple[bytes, bytes]]
    vary: dict[str, str]  # request header → the value it had when stored
    stored: float
    body: bytes

    def encode(self) -> bytes:
        meta = json.dumps(
            {
                "s": self.status,
                "h": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in self.headers],
                "v": self.vary,
                "t": self.stored,
            },
            separators=(",", ":"),
        ).encode()
        return _MAGIC + len(meta).to_bytes(4, "big") + meta + self.body

    @classmethod
    def decode(cls, data: bytes) -> Entry | None:
        if not data.startswith(_MAGIC):
            return None
        length = int.from_bytes(data[4:8], "big")
        try:
            meta = json.loads(data[8 : 8 + length])
            headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in meta["h"]]
            return cls(int(meta["s"]), headers, dict(meta["v"]), float(meta["t"]), data[8 + length :])
        except (ValueError, KeyError, TypeError):
            return None


def _request_value(ctx: RequestContext, name: str) -> str:
    return ", ".join(ctx.headers.get(name, ()))


class CacheSlot:
    """One request's business with the cache: its key, the pending lookup, then the store."""

    __slots__ = ("cache", "key", "policy", "ctx", "lookup", "ttl", "vary", "chunks", "size", "open")

    def __init__(self, cache: Cache, key: str, policy: CachePolicy, ctx: RequestContext) -> None:
        self.cache = cache
        self.key = key
        self.policy = policy
        self.ctx = ctx
        self.lookup: asyncio.Future[bytes | None] | None = None
        self.ttl = 0.0
        self.vary: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.open = False  # collecting the response body for the store

    async def entry(self) -> Entry | None:
        """The stored entry that fits this request, or None (a miss)."""
        if self.lookup is None:
            return None
        data = await self.lookup
        entry = Entry.decode(data) if data else None
        if entry is not None and any(_request_value(self.ctx, n) != v for n, v in entry.vary.items()):
            entry = None  # stored for another variant of a header the key does not cover
        if entry is None:
            self.ctx.response_headers.append(_MISS)
        return entry

    def offer(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """The upstream's answer (lower-case names): may it be stored? Then start collecting."""
        if status not in CACHEABLE_STATUSES:
            return
        control: list[str] = []
        vary: list[str] = []
        length = None
        for name, value in headers:
            if name == b"cache-control":
                control.append(value.decode("latin-1"))
            elif name == b"vary":
                vary.extend(v.strip().lower() for v in value.decode("latin-1").split(",") if v.strip())
            elif name == b"set-cookie":
                return
            elif name == b"content-length":
                length = _seconds(value.decode("latin-1"))
        found = directives(control)
        if "no-store" in found or "no-cache" in found or "private" in found or "*" in vary:
            return
        if length is not None and length > self.policy.max_bytes:
            return
        ttl = self.policy.ttl
        limit = _seconds(found.get("s-maxage")) if "s-maxage" in found else _seconds(found.get("max-age"))
        if limit is not None:
            ttl = min(ttl, float(limit))
        if ttl <= 0:
            return
        self.ttl = ttl
        self.vary = {n: _request_value(self.ctx, n) for n in vary if n not in self.policy.headers}
        self.open = True

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.policy.max_bytes:
            self.open = False
            self.chunks = []
        else:
            self.chunks.append(chunk)

    def finish(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """The whole response went to the client: store it (in the background)."""
        if not self.open:
            return
        kept = [(n, v) for n, v in headers if n not in (b"content-length", b"transfer-encoding")]
        entry = Entry(status, kept, self.vary, time.time(), b"".join(self.chunks))
        self.open = False
        self.chunks = []
        self.cache.store(self.key, entry.encode(), self.ttl)


class Cache:
    def __init__(self, redis: AsyncClient, keys: RedisKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._gets: list[tuple[str, asyncio.Future[bytes | None]]] = []
        self._sets: list[tuple[str, bytes, int]] = []
        self._getting = False
        self._setting = False
        self._down_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def begin(
        self, ctx: RequestContext, policy: CachePolicy, route: str, *, holder: str, scheme: str, target: str
    ) -> CacheSlot | None:
        """Start a cacheable request's lookup (without waiting for it); None: not cacheable.
        ``holder``: who holds the credential ("-" for none); ``target``: what goes upstream."""
        if ctx.method != "GET" or "range" in ctx.headers or time.monotonic() < self._down_until:
            ctx.response_headers.append(_BYPASS)
            return None
        if "cookie" in ctx.headers and "cookie" not in policy.headers:
            ctx.response_headers.append(_BYPASS)
            return None
        request = directives(ctx.headers.get("cache-control"))
        if "no-store" in request:
            ctx.response_headers.append(_BYPASS)
            return None
        parts = [ctx.method, scheme, ctx.header("host") or "", target, holder]
        parts += [_request_value(ctx, name) for name in policy.headers]
        digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()
        slot = CacheSlot(self, self.keys.cache(route, digest), policy, ctx)
        refresh = "no-cache" in request or request.get("max-age") == "0" or "no-cache" in ctx.headers.get("pragma", ())
        if refresh:
            ctx.response_headers.append(_MISS)
        else:
            slot.lookup = self._get(slot.key)
        return slot

    def hit_headers(self, entry: Entry) -> list[tuple[bytes, bytes]]:
        age = max(0, int(time.time() - entry.stored))
        return [_HIT, (b"age", str(age).encode())]

    # -- batched I/O ---------------------------------------------------------------------------
    def _get(self, key: str) -> asyncio.Future[bytes | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        self._gets.append((key, future))
        if not self._getting:
            self._getting = True
            self._spawn(self._drain_gets())
        return future

    def store(self, key: str, data: bytes, ttl: float) -> None:
        self._sets.append((key, data, max(1, int(ttl * 1000))))
        if not self._setting:
            self._setting = True
            self._spawn(self._drain_sets())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_gets(self) -> None:
        try:
            while self._gets:
                batch, self._gets = self._gets, []
                try:
                    # Entries of several routes live on several shards of a cluster.
                    keys = [key for key, _ in batch]
                    if isinstance(self.redis, AsyncRedisCluster):
                        values = await self.redis.mget_nonatomic(keys)
                    else:
                        values = await self.redis.mget(keys)
                except (RedisError, OSError) as exc:
                    self._failed(exc)
                    values = [None] * len(batch)
                for (_, future), value in zip(batch, values, strict=True):
                    if not future.done():
                        future.set_result(value.encode() if isinstance(value, str) else value)
        finally:
            self._getting = False

    async def _drain_sets(self) -> None:
        try:
            while self._sets:
                batch, self._sets = self._sets, []
                pipe = self.redis.pipeline(transaction=False)
                for key, data, px in batch:
                    pipe.set(key, data, px=px)
                try:
                    await pipe.execute()
                except (RedisError, OSError) as exc:
                    self._failed(exc)
        finally:
            self._setting = False

    def _failed(self, exc: Exception) -> None:
        if time.monotonic() >= self._down_until:
            log.warning("response cache: Redis unavailable (%s); bypassing for %.0f s", exc, _DOWN_BACKOFF)
        self._down_until = time.monotonic() + _DOWN_BACKOFF

    async def close(self) -> None:
        for task in list(self._tasks):
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=1.0)
            except (TimeoutError, asyncio.CancelledError, RedisError, OSError):
                task.cancel()
