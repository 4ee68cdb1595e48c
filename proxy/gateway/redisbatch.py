"""Auto-pipelining of one Lua script's calls (as auto-pipelining Redis clients do).

Requests that reach the limiter in the same event-loop turn, or while the previous batch is
on the wire, share one write and one read (redis_protocol.py) for the whole batch instead of a round
trip each. Every request still runs its own atomic EVALSHA, so exactness is untouched; only
the network and client overhead is shared. At most one batch is in flight, which makes batches
grow with load instead of connections.

Usage deltas (status classes and latency of finished requests, see ratelimit.py) ride along
in the first call of each batch, so recording them costs no command of its own.
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


class ScriptTransport(Protocol):
    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]: ...
    async def load_script(self, source: str) -> None: ...
    def close(self) -> None: ...


Deltas = list[tuple[str, int]]
_Call = tuple[list[str], list[Any], "asyncio.Future[Any]", str]


class ScriptBatcher:
    def __init__(
        self,
        conn: ScriptTransport,
        source: str,
        take_deltas: Callable[[str, int], Deltas],
        return_deltas: Callable[[str, Deltas], None],
    ) -> None:
        self.conn = conn
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._take_deltas = take_deltas
        self._return_deltas = return_deltas
        self._queue: list[_Call] = []
        self._running = False
        self.batches = 0
        self.calls = 0

    @property
    def idle(self) -> bool:
        return not self._running and not self._queue

    def call(self, keys: list[str], args: list[Any], tag: str = "") -> asyncio.Future[Any]:
        """Queue one EVALSHA whose keys all carry ``tag``; the future resolves to its reply (or
        raises RedisError/OSError)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((keys, args, future, tag))
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
        carried: list[tuple[int, str, Deltas]] = []  # (call index, tag, deltas it carries)
        tags: set[str] = set()
        for i, (keys, args, future, tag) in enumerate(batch):
            if tag in tags:
                continue
            tags.add(tag)
            deltas = self._take_deltas(tag, MAX_DELTAS_PER_CALL)
            if deltas:
                args = [*args]
                for field, value in deltas:
                    args.append(field)
                    args.append(value)
                batch[i] = (keys, args, future, tag)
                carried.append((i, tag, deltas))
        started = time.perf_counter()
        try:
            replies = await self._execute(batch)
            metrics.observe_redis_call("limiter", time.perf_counter() - started)
        except (RedisError, OSError) as exc:
            metrics.count_redis_error("limiter")
            # The batch may or may not have run; give the deltas back (a timeout after Redis ran
            # them can count them twice, which is rarer and smaller than losing them).
            for _, tag, deltas in carried:
                self._return_deltas(tag, deltas)
            for _, _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for i, tag, deltas in carried:
            # That call did not run (a cluster shard down, CLUSTERDOWN, ...): the same rule.
            if isinstance(replies[i], Exception):
                self._return_deltas(tag, deltas)
        if any(isinstance(reply, RedisConnectionError | RedisTimeoutError) for reply in replies):
            metrics.count_redis_error("limiter")
        self.batches += 1
        self.calls += len(batch)
        for (_, _, future, _), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        commands = [("EVALSHA", self.sha, len(keys), *keys, *args) for keys, args, _, _ in batch]
        replies = await self.conn.execute(commands)
        retry = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if retry:
            # Redis restarted or flushed its script cache (or a replica was promoted): load, run
            # those calls again. A NOSCRIPT call did not run, so nothing is counted twice.
            await self.conn.load_script(self.source)
            for i, reply in zip(retry, await self.conn.execute([commands[i] for i in retry]), strict=True):
                replies[i] = reply
        return list(replies)
