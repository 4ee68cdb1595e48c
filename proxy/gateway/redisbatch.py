"""Auto-pipelining of the limiter script's calls, and batching of requests into one call.

Requests that reach the limiter in the same event-loop turn, or while the previous batch is
on the wire, share one write and one read (redis_protocol.py) for the whole batch instead of a round
trip each, and one EVALSHA per hash tag (on a single Redis: one): the script checks and counts
them in order, atomically, as if each had had its own call (ratelimit.lua). Exactness is
untouched; Redis' per-call cost (the script's start, each key's read and write) is shared by the
batch. At most one batch is in flight, which makes batches grow with load instead of connections.

Usage deltas (status classes and latency of finished requests, see ratelimit.py) ride along
in the first call of each tag, so recording them costs no command of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from proxy.gateway import metrics

# Bounded so one call's argument list stays small when a backlog of deltas built up.
MAX_DELTAS_PER_CALL = 256
# Requests per EVALSHA: a script blocks Redis while it runs (≈ 2 µs per request on a busy key),
# so a backlog is split into calls of at most this many (still one round trip).
MAX_CHECKS_PER_CALL = 200
# Integers the script returns per request.
REPLY_WIDTH = 5


class ScriptTransport(Protocol):
    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]: ...
    async def load_script(self, source: str) -> None: ...
    def close(self) -> None: ...


Deltas = list[tuple[str, int]]
# (tag, the requests of one call, the usage deltas it carries) → KEYS and ARGV of that call
Encode = Callable[[str, list[Any], Deltas], tuple[list[str], list[Any]]]
_Call = tuple[Any, "asyncio.Future[Any]", str]


class ScriptBatcher:
    def __init__(
        self,
        conn: ScriptTransport,
        source: str,
        encode: Encode,
        take_deltas: Callable[[str, int], Deltas],
        return_deltas: Callable[[str, Deltas], None],
    ) -> None:
        self.conn = conn
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._encode = encode
        self._take_deltas = take_deltas
        self._return_deltas = return_deltas
        self._queue: list[_Call] = []
        self._running = False
        self.batches = 0
        self.calls = 0

    @property
    def idle(self) -> bool:
        return not self._running and not self._queue

    def call(self, item: Any, tag: str = "") -> asyncio.Future[Any]:
        """Queue one request (``item``: what ``encode`` takes) whose keys all carry ``tag``; the
        future resolves to its REPLY_WIDTH integers (or raises RedisError/OSError). ``item``
        None sends the tag's pending usage deltas alone and resolves to None."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((item, future, tag))
        if not self._running:
            self._running = True
            loop.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._send(batch)
        finally:
            self._running = False

    async def _send(self, batch: list[_Call]) -> None:
        by_tag: dict[str, list[tuple[Any, asyncio.Future[Any]]]] = {}
        for item, future, tag in batch:
            calls = by_tag.get(tag)
            if calls is None:
                by_tag[tag] = [(item, future)]
            else:
                calls.append((item, future))
        # One EVALSHA per tag (per MAX_CHECKS_PER_CALL requests); the first carries the deltas.
        commands: list[tuple[Any, ...]] = []
        parts: list[tuple[str, Deltas, list[tuple[Any, asyncio.Future[Any]]]]] = []
        try:
            for tag, calls in by_tag.items():
                for start in range(0, len(calls), MAX_CHECKS_PER_CALL):
                    part = calls[start : start + MAX_CHECKS_PER_CALL]
                    deltas = self._take_deltas(tag, MAX_DELTAS_PER_CALL) if start == 0 else []
                    parts.append((tag, deltas, part))
                    keys, args = self._encode(tag, [item for item, _ in part if item is not None], deltas)
                    commands.append(("EVALSHA", self.sha, len(keys), *keys, *args))
        except Exception as exc:
            # A request the script cannot take (a bug): its batch fails with the error instead of
            # waiting for ever, and the next batch starts afresh.
            self._fail(batch, parts, exc)
            return
        started = time.perf_counter()
        try:
            replies = await self._execute(commands)
            metrics.observe_redis_call("limiter", time.perf_counter() - started)
        except (RedisError, OSError) as exc:
            metrics.count_redis_error("limiter")
            # The batch may or may not have run; give the deltas back (a timeout after Redis ran
            # them can count them twice, which is rarer and smaller than losing them).
            self._fail(batch, parts, exc)
            return
        if any(isinstance(reply, RedisConnectionError | RedisTimeoutError) for reply in replies):
            metrics.count_redis_error("limiter")
        self.batches += 1
        self.calls += len(batch)
        for (tag, deltas, part), reply in zip(parts, replies, strict=True):
            if isinstance(reply, Exception):
                # That call did not run (a cluster shard down, CLUSTERDOWN, ...): the same rule.
                if deltas:
                    self._return_deltas(tag, deltas)
                for _, future in part:
                    if not future.done():
                        future.set_exception(reply)
                continue
            at = 0
            for item, future in part:
                result = None
                if item is not None:
                    result, at = reply[at : at + REPLY_WIDTH], at + REPLY_WIDTH
                if not future.done():  # a request that gave up waiting: its count stands
                    future.set_result(result)

    def _fail(
        self, batch: list[_Call], parts: list[tuple[str, Deltas, list[tuple[Any, asyncio.Future[Any]]]]], exc: Exception
    ) -> None:
        for tag, deltas, _ in parts:
            if deltas:
                self._return_deltas(tag, deltas)
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(exc)

    async def _execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        replies = await self.conn.execute(commands)
        retry = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if retry:
            # Redis restarted or flushed its script cache (or a replica was promoted): load, run
            # those calls again. A NOSCRIPT call did not run, so nothing is counted twice.
            await self.conn.load_script(self.source)
            for i, reply in zip(retry, await self.conn.execute([commands[i] for i in retry]), strict=True):
                replies[i] = reply
        return list(replies)
