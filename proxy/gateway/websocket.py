"""WebSocket passthrough: the same match → authenticate → limit as HTTP, then a frame relay.

The handshake is answered only once the upstream has accepted, so the client sees the
subprotocol the upstream chose, and an upstream that refuses (or is down) turns into an HTTP
error on the handshake (ASGI ``websocket.http.response`` extension) instead of a socket that
opens and dies. Frames are relayed by two coroutines, no thread hop; each waits for the other
side's write to drain before reading more, so a slow reader holds its sender back through TCP
instead of the gateway buffering without bound.

Admission (match, authenticate, limit, the upstream request) is pipeline.py's, as for HTTP.
Inside the socket: a maximum message size (close 1009), message rates per connection and per
key on this instance (close 1008 or drop, per route; socketpolicy.py), concurrent sockets per
key and partner across all instances (leases.py), an idle timeout and a maximum lifetime.
Revoking a key or suspending a partner closes its sockets on every instance (revocation.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from proxy.gateway import metrics
from proxy.gateway.attempts import CONNECTION_FAILURES, Retry, each_target, may_retry
from proxy.gateway.auth import Identity
from proxy.gateway.balancer import Target, Upstream
from proxy.gateway.context import RequestContext
from proxy.gateway.errors import BadGateway, GatewayError, GatewayTimeout
from proxy.gateway.leases import Leases
from proxy.gateway.pipeline import Admitted
from proxy.gateway.redis_urls import AsyncClient
from proxy.gateway.revocation import CLOSE_REVOKED, Revocations
from proxy.gateway.socketpolicy import SocketPolicy, TokenBucket
from proxy.gateway.tasks import cancel_all
from proxy.gateway.types import Receive, Send
from proxy.gateway.vocabulary import RedisKeys

log = logging.getLogger("apigw.websocket")


class Closed(Exception):
    """End the session, closing the client side with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(eq=False)
class Session:
    id: str
    identity: Identity | None
    lease_keys: list[str] = field(default_factory=list)
    closing: asyncio.Future[tuple[int, str]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    messages_in: int = 0
    messages_out: int = 0
    started: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)

    def close(self, code: int, reason: str) -> None:
        if not self.closing.done():
            self.closing.set_result((code, reason))


class SocketRelay:
    """The instance's live sockets: open them upstream, relay, enforce their limits."""

    def __init__(
        self,
        redis: AsyncClient,
        keys: RedisKeys,
        *,
        idle_timeout: float,
        max_lifetime: float,
        heartbeat: float,
        channel_layer: Any = None,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.max_lifetime = max_lifetime
        self.heartbeat = heartbeat
        self.sessions: set[Session] = set()
        self.key_buckets: dict[int, TokenBucket] = {}
        self.leases = Leases(redis, keys)
        self.revocations = Revocations(self.sessions, channel_layer)
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def _sweep(self) -> None:
        tick = min(1.0, self.idle_timeout / 4, self.max_lifetime / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for session in list(self.sessions):
                if now - session.last_activity > self.idle_timeout:
                    session.close(1001, "idle timeout")
                elif now - session.started > self.max_lifetime:
                    session.close(1001, "maximum connection lifetime reached")

    async def start(self) -> None:
        # Sockets hold their upstream connection for hours: a session of their own, so they never
        # take the HTTP pool's per-host slots (and are not capped by them).
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
        )
        held = lambda: [(s.id, s.lease_keys) for s in self.sessions]  # noqa: E731
        self._tasks.append(asyncio.create_task(self.leases.renew_forever(held), name="ws-leases"))
        self._tasks.append(asyncio.create_task(self._sweep(), name="ws-sweep"))
        self._tasks.append(asyncio.create_task(self.revocations.listen(), name="ws-revocations"))

    async def stop(self) -> None:
        for session in list(self.sessions):
            session.close(1001, "gateway shutting down")
        await cancel_all(self._tasks)
        if self._session is not None:
            await self._session.close()

    async def serve(
        self, ctx: RequestContext, admitted: Admitted, receive: Receive, send: Send, *, connect_timeout: float
    ) -> tuple[int, str]:
        """Connect upstream (through the same target choice, breaker and retries as HTTP), accept
        the client, relay until one side ends. Returns the close."""
        upstream, offer = admitted.upstream, admitted.offer
        assert upstream is not None and offer is not None
        policy = admitted.traffic.socket
        identity = ctx.identity
        session = Session(uuid.uuid4().hex, identity)
        session.lease_keys = await self.leases.acquire(session.id, identity, policy)
        try:
            retry = admitted.traffic.retry
            retries = retry.retries if retry.applies_to("GET") else 0

            async def attempt(index: int, target: Target, may: bool) -> aiohttp.ClientWebSocketResponse:
                url = target.url + admitted.target
                return await self._connect(upstream, index, url, admitted, policy, connect_timeout, may)

            ctx.upstream_started = time.perf_counter()
            socket = await each_target(ctx, upstream, admitted.hash_key, retries, attempt)
            async with socket:
                accept: dict[str, Any] = {
                    "type": "websocket.accept",
                    "headers": [(b"x-request-id", ctx.request_id.encode())],
                }
                answer = offer.answer(socket.protocol)
                if answer:
                    accept["subprotocol"] = answer
                await send(accept)
                ctx.status = 101
                ctx.response_started = True
                self.sessions.add(session)
                route = ctx.match.route.name if ctx.match is not None else ""
                metrics.websocket_opened(route)
                if identity is not None:
                    await self.revocations.join(identity)
                try:
                    return await self._relay(session, socket, policy, receive, send, route)
                finally:
                    self.sessions.discard(session)
                    metrics.websocket_closed(route)
                    ctx.ws_messages_up = session.messages_in
                    ctx.ws_messages_down = session.messages_out
                    if identity is not None:
                        await self.revocations.leave(identity)
        finally:
            await self.leases.release(session.id, session.lease_keys)

    async def _connect(
        self,
        upstream: Upstream,
        index: int,
        url: str,
        admitted: Admitted,
        policy: SocketPolicy,
        connect_timeout: float,
        may: bool,
    ) -> aiohttp.ClientWebSocketResponse:
        """One handshake with one target; its outcome feeds the target's circuit like an HTTP
        attempt's. A refused or reset connection may go to another target (attempts.Retry)."""
        assert self._session is not None, "SocketRelay.start() was not awaited"
        assert admitted.offer is not None and admitted.headers is not None
        circuit = upstream.circuits[index]
        upstream.inflight[index] += 1
        try:
            # The handshake gets the upstream's connect timeout: an upstream that accepts the
            # TCP connection but never answers must not leave the client hanging.
            async with asyncio.timeout(connect_timeout):
                socket = await self._session.ws_connect(
                    url,
                    protocols=admitted.offer.protocols,
                    headers=admitted.headers,
                    autoclose=False,
                    autoping=True,
                    heartbeat=self.heartbeat,
                    max_msg_size=policy.max_message_bytes + 1,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                    compress=0,
                )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            circuit.failure(time.time())
            raise GatewayTimeout() from exc
        except aiohttp.WSServerHandshakeError as exc:
            # The upstream answered, just not with an upgrade: its status says how healthy it is.
            if exc.status in upstream.breaker.failure_statuses:
                circuit.failure(time.time())
            else:
                circuit.success()
            raise BadGateway(f"The upstream refused the WebSocket ({exc.status}).") from exc
        except CONNECTION_FAILURES as exc:
            circuit.failure(time.time())
            if may_retry(upstream, may):
                raise Retry(BadGateway()) from exc
            raise BadGateway() from exc
        except (aiohttp.ClientError, OSError) as exc:
            circuit.failure(time.time())
            raise BadGateway() from exc
        finally:
            upstream.inflight[index] -= 1
        circuit.success()
        return socket

    async def _relay(
        self,
        session: Session,
        upstream: aiohttp.ClientWebSocketResponse,
        policy: SocketPolicy,
        receive: Receive,
        send: Send,
        route: str,
    ) -> tuple[int, str]:
        messages_up, messages_down = metrics.websocket_message_counters(route)
        per_connection = TokenBucket(policy.messages_per_second) if policy.messages_per_second else None
        per_key = None
        identity = session.identity
        if policy.key_messages_per_second and identity is not None and identity.key is not None:
            per_key = self.key_buckets.setdefault(identity.key.id, TokenBucket(policy.key_messages_per_second))

        async def client_to_upstream() -> tuple[int, str]:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    code = int(message.get("code", 1000))
                    reason = str(message.get("reason") or "")
                    await upstream.close(code=code if _sendable(code) else 1000, message=reason.encode()[:123])
                    return code, reason
                data: str | bytes | None = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                size = len(data.encode()) if isinstance(data, str) else len(data)
                if size > policy.max_message_bytes:
                    raise Closed(1009, f"message larger than {policy.max_message_bytes} bytes")
                if (per_connection is not None and not per_connection.take()) or (
                    per_key is not None and not per_key.take()
                ):
                    if policy.rate_action == "drop":
                        continue
                    raise Closed(1008, "message rate limit exceeded")
                session.last_activity = time.monotonic()
                session.messages_in += 1
                messages_up.inc()
                if isinstance(data, str):
                    await upstream.send_str(data)
                else:
                    await upstream.send_bytes(data)

        async def upstream_to_client() -> tuple[int, str]:
            while True:
                msg = await upstream.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await send({"type": "websocket.send", "text": msg.data})
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await send({"type": "websocket.send", "bytes": msg.data})
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    code = upstream.close_code or 1000
                    reason = msg.extra if isinstance(msg.extra, str) else ""
                    raise Closed(code if _sendable(code) else 1011, reason or "upstream closed")
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise Closed(1011, "upstream connection failed")
                else:
                    continue
                session.last_activity = time.monotonic()
                session.messages_out += 1
                messages_down.inc()

        # Two tasks a socket; idle and lifetime limits are one sweep for all (see _sweep), which
        # measured about a tenth less memory per idle socket than a watchdog task each.
        tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
        try:
            done, _ = await asyncio.wait([*tasks, session.closing], return_when=asyncio.FIRST_COMPLETED)
            finished = session.closing if session.closing.done() else next(iter(done))
            try:
                if finished is session.closing:
                    raise Closed(*session.closing.result())
                return finished.result()  # the client closed: already passed upstream
            except Closed as closed:
                await _close_both(upstream, send, closed.code, closed.reason)
                return closed.code, closed.reason
            except (aiohttp.ClientError, ConnectionError, OSError):
                await _close_both(upstream, send, 1011, "upstream connection failed")
                return 1011, "upstream connection failed"
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task


def _sendable(code: int) -> bool:
    """Close codes an endpoint may send (RFC 6455 7.4): 1005/1006/1015 are reserved."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or 3000 <= code <= 4999


async def _close_both(upstream: aiohttp.ClientWebSocketResponse, send: Send, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await send({"type": "websocket.close", "code": code, "reason": reason[:123]})
    with contextlib.suppress(Exception):
        await upstream.close(code=code if code != CLOSE_REVOKED else 1008, message=reason.encode()[:123])


async def reject(scope: Any, send: Send, error: GatewayError, request_id: str) -> None:
    """Refuse a handshake: an HTTP answer where the server supports it, else a close."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = error.body(request_id)
        await send(
            {
                "type": "websocket.http.response.start",
                "status": error.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                    *error.headers,
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    code = {429: 1013, 502: 1014, 503: 1013, 504: 1014}.get(error.status_code, 1008)
    await send({"type": "websocket.close", "code": code, "reason": error.code})
