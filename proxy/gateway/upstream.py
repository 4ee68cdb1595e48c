"""Phase 4, forward: stream the request to a target and the response back to the client.

The gateway's own HTTP/1.1 client (h1client.py, h1pool.py: asyncio protocols and httptools'
response parser, a bounded keep-alive pool per target) carries the requests; it replaced one
``aiohttp.ClientSession``, and the public route now takes about half the CPU per request
(docs/benchmarks.md, "Why the gateway has its own HTTP/1.1 client"). Bodies stream both ways
chunk by chunk, so a 100 MB upload or download never sits in memory and server-sent
events reach the client as they are produced.

Resilience (balancer.py, breaker.py, retry.py): the balancer picks a target whose circuit admits
requests; every outcome is reported to that target's circuit; a failed attempt of an idempotent
request whose body can be sent again is retried on another target while the upstream's retry
budget lasts. With no target left the answer is a 503 ``no_healthy_upstream`` at once, with a
``Retry-After`` of the shortest remaining ejection: no timeout is waited for on open circuits.

Timeouts, per route (else per upstream, else the gateway's): ``connect`` (TCP connect, including
waiting for a pooled connection), ``read`` (between two reads of the response, or while the
upstream takes none of a streamed upload), ``total`` (all attempts up to the last byte of the
response; none by default, so event streams stay open).

A reused keep-alive connection that fails before any byte of the response may simply have been
closed by the upstream while the request went out; an idempotent request whose body can be sent
again then goes once more to the same target on a new connection, not counted as a failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import aiohttp

from proxy.gateway.attempts import Retry, each_target, may_retry
from proxy.gateway.balancer import Target, Upstream
from proxy.gateway.body import BodyLimits, ClientGone, Upload, chunks, declared_length
from proxy.gateway.cache import Entry
from proxy.gateway.config import GatewayConfig
from proxy.gateway.context import RequestContext
from proxy.gateway.drain import Drain
from proxy.gateway.errors import (
    BadGateway,
    GatewayError,
    GatewayTimeout,
    PayloadTooLarge,
    RequestTimeout,
    ServiceUnavailable,
)
from proxy.gateway.h1client import (
    ConnectFailed,
    ConnectTimeout,
    Disconnected,
    H1Connection,
    UpstreamError,
    encode_head,
    framing_for,
)
from proxy.gateway.h1pool import UpstreamClient
from proxy.gateway.headers import filter_response_headers
from proxy.gateway.pipeline import Admitted
from proxy.gateway.policy import TrafficPolicy
from proxy.gateway.retry import IDEMPOTENT
from proxy.gateway.snapshot import Snapshot
from proxy.gateway.types import Receive, Send

__all__ = ["ClientGone", "Forwarder"]

_NO_BODY_STATUS = frozenset({204, 304})
# Failures before any byte of the response, where the request did not reach the application or
# an idempotent one may safely be sent again (retry.py): another target may be tried.
_CONNECTION_FAILURES = (ConnectFailed, ConnectTimeout, Disconnected)
_EVENT_STREAM = b"text/event-stream"


class _Exchange:
    """One request's business with its upstream, over all its attempts."""

    __slots__ = (
        "ctx",
        "upstream",
        "path",
        "headers",
        "preserve_host",
        "receive",
        "send",
        "policy",
        "data",
        "hash_key",
        "cache",
        "index",
        "timeouts",
        "forwarder",
    )

    def __init__(
        self,
        ctx: RequestContext,
        admitted: Admitted,
        upstream: Upstream,
        receive: Receive,
        send: Send,
        data: bytes | Upload | None,
        forwarder: Forwarder,
    ) -> None:
        self.ctx = ctx
        self.upstream = upstream
        self.path = admitted.target
        assert admitted.headers is not None  # admission built them (pipeline.py)
        self.headers = admitted.headers
        self.preserve_host = admitted.preserve_host
        self.receive = receive
        self.send = send
        self.policy = admitted.traffic
        self.data = data
        self.hash_key = admitted.hash_key
        self.cache = admitted.cache
        self.index = -1  # the target of the attempt in progress
        self.timeouts = (0.0, 0.0)  # (connect, read) seconds, set by the forwarder
        self.forwarder = forwarder

    def attempt(self, index: int, target: Target, retry: bool) -> Awaitable[None]:
        """The attempt callable of attempts.each_target: the forwarder's, for this exchange (a
        bound method, not a closure and a coroutine of its own per request)."""
        return self.forwarder.attempt(self, index, target, retry)

    def replayable(self) -> bool:
        return not (isinstance(self.data, Upload) and self.data.started)

    def upload_done(self) -> bool:
        """Whether the request body is read, so receive() is free for the disconnect watcher."""
        return not isinstance(self.data, Upload) or self.data.finished


class _Drained(Exception):
    """The process is draining: end this event stream cleanly, the client reconnects elsewhere."""


class _Watch:
    """Waits for the client to disconnect while a long response is relayed, and then fails the
    relay's pending read at once (ClientGone): the upstream is closed and the pool slot freed
    instead of the stream running on for nobody. For event streams it also ends the stream when
    the process starts draining (drain.py)."""

    __slots__ = ("ctx", "conn", "drain", "task")

    def __init__(self, ctx: RequestContext, receive: Receive, conn: H1Connection, drain: Drain | None) -> None:
        self.ctx = ctx
        self.conn = conn
        self.drain = drain
        self.task = asyncio.create_task(self._wait(receive))
        if drain is not None:
            if drain.draining:
                self._end()
            else:
                drain.streams.add(self._end)

    async def _wait(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.ctx.client_gone = True
                self.conn.fail(ClientGone())
                return

    def _end(self) -> None:
        self.conn.fail(_Drained())

    def stop(self) -> None:
        self.task.cancel()
        if self.drain is not None:
            self.drain.streams.discard(self._end)


class Forwarder:
    def __init__(self, config: GatewayConfig, drain: Drain | None = None) -> None:
        self.config = config
        self.drain = drain if drain is not None else Drain()
        self.via = f"1.1 {config.via}"
        self._via = self.via.encode()
        self.client: UpstreamClient | None = None
        self._session: aiohttp.ClientSession | None = None
        # Upstream name → its slots (_take_slot); kept across snapshots, like the pool.
        self._slots: dict[str, asyncio.Semaphore] = {}

    async def start(self) -> None:
        self.client = UpstreamClient(self.config.upstream_pool_size)
        # The active health checks (probes.py) keep an aiohttp session: a few requests a second,
        # where convenience is worth more than the microseconds.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=30), cookie_jar=aiohttp.DummyCookieJar()
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The health checks' session (not the forwarding client)."""
        assert self._session is not None, "Forwarder.start() was not awaited"
        return self._session

    def retain(self, snapshot: Snapshot) -> None:
        """On a snapshot swap: drop the connection pools of targets the new one no longer has."""
        if self.client is not None:
            self.client.retain(target for upstream in snapshot.upstreams.values() for target in upstream.targets)

    async def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timeouts(self, upstream: Upstream, policy: TrafficPolicy) -> tuple[float, float]:
        """(connect, read) in seconds."""
        return (
            policy.connect_timeout or upstream.connect_timeout or self.config.connect_timeout,
            policy.read_timeout or upstream.read_timeout or self.config.read_timeout,
        )

    async def forward(self, ctx: RequestContext, admitted: Admitted, receive: Receive, send: Send) -> None:
        """Send the admitted request upstream (retrying per the route's policy) and relay the
        response; admission (pipeline.py) has chosen the upstream and built the request."""
        upstream, policy = admitted.upstream, admitted.traffic
        assert upstream is not None
        assert self.client is not None, "Forwarder.start() was not awaited"
        max_bytes = self._limit(policy)
        length = declared_length(ctx, max_bytes)
        retry = policy.retry.applies_to(ctx.method)
        data: bytes | Upload | None = None
        if length is None or length > 0:
            limits = BodyLimits(max_bytes, self.config.body_idle_timeout, self.config.upload_timeout)
            if length is not None and length <= self.config.retry_buffer_bytes:
                # Small bodies are read before a pooled connection is taken (and can be retried):
                # a slow client then holds nothing of the upstream's while it sends.
                data = b"".join([chunk async for chunk in chunks(ctx, receive, limits)])
            else:
                data = Upload(ctx, receive, limits)
        exchange = _Exchange(ctx, admitted, upstream, receive, send, data, self)
        slots = self._slots.get(upstream.name)
        if slots is None:
            slots = self._slots[upstream.name] = asyncio.Semaphore(
                self.config.upstream_pool_size * max(1, len(upstream.targets))
            )
        if slots.locked():
            await self._queue_for(slots)
        else:
            await slots.acquire()  # free: returns at once
        exchange.timeouts = self._timeouts(upstream, policy)
        retries = policy.retry.retries if retry else 0
        ctx.upstream_started = time.perf_counter()
        try:
            if policy.total_timeout is None:
                await each_target(ctx, upstream, exchange.hash_key, retries, exchange.attempt)
                return
            try:
                async with asyncio.timeout(policy.total_timeout):
                    await each_target(ctx, upstream, exchange.hash_key, retries, exchange.attempt)
            except TimeoutError as exc:
                if ctx.response_started:
                    raise
                if exchange.index >= 0:  # the total timeout ran out waiting for this target
                    upstream.circuits[exchange.index].failure(time.time())
                raise GatewayTimeout() from exc
        finally:
            slots.release()
            ctx.upstream_finished = time.perf_counter()

    async def _queue_for(self, slots: asyncio.Semaphore) -> None:
        """Wait for one of the upstream's slots (as many as its pool has connections) at most
        GATEWAY_UPSTREAM_QUEUE_TIMEOUT: a pile-up behind slow requests gets a fast 503, not a
        504 that would also count against the targets' health."""
        try:
            async with asyncio.timeout(self.config.upstream_queue_timeout):
                await slots.acquire()
        except TimeoutError:
            raise ServiceUnavailable(
                "The API is at capacity; try again shortly.", code="upstream_busy", headers=[(b"retry-after", b"1")]
            ) from None

    async def attempt(self, exchange: _Exchange, index: int, target: Target, retry: bool) -> None:
        """One attempt on one target (attempts.each_target calls it, through
        ``_Exchange.attempt``): returns when the response was relayed, raises Retry when it is to
        be retried (the retry budget is already charged), else the error to answer."""
        ctx, upstream, policy = exchange.ctx, exchange.upstream, exchange.policy
        exchange.index = index
        if not exchange.preserve_host:
            exchange.headers["Host"] = target.authority
        circuit = upstream.circuits[index]
        upstream.inflight[index] += 1
        try:
            conn = await self._exchange(exchange, target, exchange.timeouts)
            try:
                status = conn.status
                if status in upstream.breaker.failure_statuses:
                    circuit.failure(time.time())
                else:
                    circuit.success()
                if status in policy.retry.statuses and self._may_retry(exchange, retry):
                    raise Retry()
                await self._relay(exchange, conn)
            finally:
                conn.release()
        except (GatewayError, ClientGone):
            circuit.released()
            raise
        except (TimeoutError, UpstreamError, OSError) as exc:
            if ctx.body_timed_out:
                circuit.released()
                raise RequestTimeout() from exc
            if ctx.body_too_large:
                circuit.released()
                raise PayloadTooLarge(f"The request body may be at most {self._limit(policy)} bytes.") from exc
            if ctx.client_gone:
                circuit.released()
                raise ClientGone() from exc
            circuit.failure(time.time())
            if ctx.response_started:
                raise
            error: GatewayError = GatewayTimeout() if isinstance(exc, TimeoutError) else BadGateway()
            if isinstance(exc, _CONNECTION_FAILURES) and self._may_retry(exchange, retry):
                raise Retry(error) from exc
            raise error from exc
        finally:
            upstream.inflight[index] -= 1

    async def _exchange(self, exchange: _Exchange, target: Target, timeouts: tuple[float, float]) -> H1Connection:
        """Send the request on a pooled connection and wait for the response head. A reused
        connection that fails before the response began may have been closed by the upstream
        while idle: an idempotent request that can be sent again gets one new connection."""
        assert self.client is not None
        ctx, data = exchange.ctx, exchange.data
        try:
            head = encode_head(
                ctx.method,
                exchange.path,
                exchange.headers.items(),
                framing_for(ctx.method, "Content-Length" in exchange.headers, data),
            )
        except ValueError as exc:
            raise BadGateway("The request cannot be sent upstream as HTTP/1.1.") from exc
        pool = self.client.pool(target)
        connect_timeout, read_timeout = timeouts
        fresh = False
        while True:
            conn = (None if fresh else pool.take_idle()) or await pool.acquire(connect_timeout, fresh)
            conn.begin(ctx.method == "HEAD", read_timeout)
            try:
                if isinstance(data, Upload):
                    conn.write(head)
                    await conn.send_body(data, "Content-Length" not in exchange.headers)
                else:
                    conn.write(head + data if data else head)
                await conn.response_head()
                return conn
            except Disconnected:
                conn.release()
                if fresh or not conn.reused or ctx.method not in IDEMPOTENT or not exchange.replayable():
                    raise
                fresh = True
            except BaseException:
                conn.release()
                raise

    @staticmethod
    def _may_retry(exchange: _Exchange, retry: bool) -> bool:
        return exchange.replayable() and may_retry(exchange.upstream, retry)

    def _limit(self, policy: TrafficPolicy) -> int:
        return policy.max_body_bytes if policy.max_body_bytes is not None else self.config.max_body_bytes

    def finish_headers(
        self, ctx: RequestContext, headers: list[tuple[bytes, bytes]], policy: TrafficPolicy
    ) -> list[tuple[bytes, bytes]]:
        """The upstream's (or the cache's) headers as the client gets them."""
        if policy.cors is not None:  # the gateway answers CORS for this route, alone
            headers = [(n, v) for n, v in headers if not n.startswith(b"access-control-")]
        if policy.response_transform is not None:
            headers = policy.response_transform.apply_response(headers)
        headers.append((b"via", self._via))
        headers.append((b"x-request-id", ctx.request_id.encode()))
        headers.extend(ctx.response_headers)
        return headers

    async def _relay(self, exchange: _Exchange, conn: H1Connection) -> None:
        ctx, send, policy, cache = exchange.ctx, exchange.send, exchange.policy, exchange.cache
        status = conn.status
        upstream_headers = filter_response_headers(conn.headers)
        if cache is not None:
            cache.offer(status, upstream_headers)
        if status in _NO_BODY_STATUS:
            # A 304 may carry the representation's length; uvicorn would take it for the length
            # of a body to come and break the client's connection when none does.
            relayed = [(n, v) for n, v in upstream_headers if n != b"content-length"]
        else:
            relayed = list(upstream_headers)
        headers = self.finish_headers(ctx, relayed, policy)
        ctx.streamed = _is_event_stream(upstream_headers)  # long by design (accesslog)
        ctx.status = status
        ctx.response_started = True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if ctx.method == "HEAD" or status in _NO_BODY_STATUS:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            if cache is not None:
                cache.finish(status, upstream_headers)
            return
        collect = cache is not None and cache.open
        watch: _Watch | None = None
        ended = False  # the last send said more_body=False
        try:
            while True:
                chunk = conn.read_nowait()
                if chunk is None:
                    chunk = await conn.read()
                if not chunk:
                    break
                # Most answers arrive whole with their head: one send, no watcher, no extra turn.
                # With a watcher the end goes in a send of its own, after the watcher stopped.
                last = conn.complete and watch is None
                ctx.bytes_sent += len(chunk)
                if collect:
                    assert cache is not None
                    cache.add(chunk)
                    collect = cache.open
                await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                if last:
                    ended = True
                    break
                # A longer body might outlive its client, whose disconnect only receive() reports:
                # uvicorn's send() does nothing once the client is gone, and an idle event stream
                # never sends.
                if watch is None and exchange.upload_done():
                    watch = _Watch(ctx, exchange.receive, conn, self.drain if ctx.streamed else None)
        except _Drained:
            pass  # the connection is closed, not pooled (so is it when the client is gone)
        finally:
            if watch is not None:
                # Before the last send: after it, receive() reports a disconnect for any request.
                watch.stop()
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        if cache is not None:
            cache.finish(status, upstream_headers)

    async def replay(self, ctx: RequestContext, entry: Entry, policy: TrafficPolicy, send: Send) -> None:
        """Answer from the response cache."""
        headers = self.finish_headers(ctx, list(entry.headers), policy)
        headers.append((b"content-length", str(len(entry.body)).encode()))
        ctx.status = entry.status
        ctx.response_started = True
        await send({"type": "http.response.start", "status": entry.status, "headers": headers})
        body = b"" if ctx.method == "HEAD" or entry.status in _NO_BODY_STATUS else entry.body
        ctx.bytes_sent = len(body)
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _is_event_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == _EVENT_STREAM
    return False
