"""WebSocket passthrough: the same match → authenticate → limit as HTTP, then a frame relay.

The handshake is answered only once the upstream has accepted, so the client sees the
subprotocol the upstream chose, and an upstream that refuses (or is down) turns into an HTTP
error on the handshake (ASGI ``websocket.http.response`` extension) instead of a socket that
opens and dies. Frames are relayed by two coroutines, no thread hop; each waits for the other
side's write to drain before reading more, so a slow reader holds its sender back through TCP
instead of the gateway buffering without bound.

Inside the socket: a maximum message size (close 1009), message rates per connection and per
key on this instance (close 1008 or drop, per route), concurrent sockets per key and partner
across all instances (expiring leases in Redis, so a crashed instance's sockets are released
by themselves), an idle timeout and a maximum lifetime. Revoking a key or suspending a partner
closes its sockets on every instance (4401): a channel-layer group per key and per partner
delivers the news, and every snapshot swap checks the live sockets again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proxy.gateway import metrics, tracing
from proxy.gateway.auth import AuthIndex, Identity
from proxy.gateway.context import RequestContext
from proxy.gateway.errors import BadGateway, GatewayError, GatewayTimeout, TooManyRequests
from proxy.gateway.headers import GATEWAY_OWNED, HOP_BY_HOP, connection_tokens
from proxy.gateway.redis_keys import RedisKeys
from proxy.gateway.types import Receive, Send

log = logging.getLogger("apigw.websocket")

# Handshake headers the upstream must not see: the upstream connection negotiates its own.
_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)
KEY_SUBPROTOCOL = "apikey."  # browsers cannot set headers: "apikey.<key>" as an offered subprotocol
CLOSE_REVOKED = 4401
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
LEASE_SECONDS = 30.0

# Concurrent-socket leases: drop expired members, refuse when a cap is reached, else add ours.
_LEASE = """
local now, expires, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local cap = tonumber(ARGV[3 + i])
  if cap > 0 and redis.call('ZCARD', KEYS[i]) >= cap then return i end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], expires, id)
  redis.call('PEXPIREAT', KEYS[i], expires)
end
return 0
"""


@dataclass(frozen=True, slots=True)
class SocketPolicy:
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    messages_per_second: int | None = None
    key_messages_per_second: int | None = None
    rate_action: str = "close"
    max_per_key: int | None = None
    max_per_partner: int | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> SocketPolicy:
        spec = spec or {}
        return cls(
            max_message_bytes=int(spec.get("max_message_bytes") or DEFAULT_MAX_MESSAGE_BYTES),
            messages_per_second=spec.get("messages_per_second"),
            key_messages_per_second=spec.get("key_messages_per_second"),
            rate_action=spec.get("rate_action") or "close",
            max_per_key=spec.get("max_per_key"),
            max_per_partner=spec.get("max_per_partner"),
        )


class TokenBucket:
    """``rate`` messages per second with a burst of one second's worth."""

    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: int) -> None:
        self.rate = float(rate)
        self.tokens = float(rate)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


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
    lease_keys: list[str]
    closing: asyncio.Future[tuple[int, str]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    messages_in: int = 0
    messages_out: int = 0
    started: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)

    def close(self, code: int, reason: str) -> None:
        if not self.closing.done():
            self.closing.set_result((code, reason))


class SocketRelay:
    """The instance's live sockets, their leases and their revocation."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: RedisKeys,
        *,
        idle_timeout: float,
        max_lifetime: float,
        heartbeat: float,
        channel_layer: Any = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.idle_timeout = idle_timeout
        self.max_lifetime = max_lifetime
        self.heartbeat = heartbeat
        self.layer = channel_layer
        self.sessions: set[Session] = set()
        self.key_buckets: dict[int, TokenBucket] = {}
        self._lease = redis.register_script(_LEASE)
        self._channel: str | None = None
        self._groups: dict[str, int] = {}
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
        self._tasks.append(asyncio.create_task(self._renew_leases(), name="ws-leases"))
        self._tasks.append(asyncio.create_task(self._sweep(), name="ws-sweep"))
        if self.layer is not None:
            self._tasks.append(asyncio.create_task(self._listen(), name="ws-revocations"))

    async def stop(self) -> None:
        for session in list(self.sessions):
            session.close(1001, "gateway shutting down")
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    # -- revocation ----------------------------------------------------------------------------
    @staticmethod
    def groups_of(identity: Identity) -> list[str]:
        groups = [f"partner.{identity.partner.id}"]
        if identity.key is not None:
            groups.append(f"apikey.{identity.key.id}")
        return groups

    async def _listen(self) -> None:
        while True:
            try:
                if self._channel is None:
                    self._channel = await self.layer.new_channel("apigw-ws.")
                message = await self.layer.receive(self._channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the layer reconnects; keep listening
                log.warning("revocation channel error: %s", exc)
                await asyncio.sleep(1.0)
                continue
            self.close_matching(message.get("group", ""), message.get("reason", "credentials revoked"))

    def close_matching(self, group: str, reason: str) -> int:
        closed = 0
        for session in list(self.sessions):
            if session.identity is not None and group in self.groups_of(session.identity):
                session.close(CLOSE_REVOKED, reason)
                closed += 1
        return closed

    def revalidate(self, index: AuthIndex) -> None:
        """After a snapshot swap: close sockets whose key or partner is no longer good."""
        now = time.time()
        for session in list(self.sessions):
            identity = session.identity
            if identity is None:
                continue
            partner = index.partners.get(identity.partner.id)
            key = index.keys.get(identity.key.prefix) if identity.key is not None else None
            if partner is None or partner.status != "active":
                session.close(CLOSE_REVOKED, "partner suspended")
            elif identity.key is not None and (key is None or (key.expires is not None and key.expires <= now)):
                session.close(CLOSE_REVOKED, "API key revoked or expired")

    async def _join(self, identity: Identity) -> None:
        if self.layer is None:
            return
        for group in self.groups_of(identity):
            self._groups[group] = self._groups.get(group, 0) + 1
            if self._groups[group] == 1:
                try:
                    if self._channel is None:
                        self._channel = await self.layer.new_channel("apigw-ws.")
                    await self.layer.group_add(group, self._channel)
                except Exception as exc:
                    log.warning("could not join revocation group %s: %s", group, exc)

    async def _leave(self, identity: Identity) -> None:
        if self.layer is None:
            return
        for group in self.groups_of(identity):
            self._groups[group] -= 1
            if self._groups[group] == 0:
                del self._groups[group]
                with contextlib.suppress(Exception):
                    await self.layer.group_discard(group, self._channel)

    # -- leases --------------------------------------------------------------------------------
    def lease_keys(self, identity: Identity | None, policy: SocketPolicy) -> tuple[list[str], list[int]]:
        keys: list[str] = []
        caps: list[int] = []
        if identity is None:
            return keys, caps
        if identity.key is not None and policy.max_per_key:
            keys.append(f"{self.keys.prefix}ws:k{identity.key.id}")
            caps.append(policy.max_per_key)
        if policy.max_per_partner:
            keys.append(f"{self.keys.prefix}ws:p{identity.partner.id}")
            caps.append(policy.max_per_partner)
        return keys, caps

    async def acquire(self, session_id: str, keys: list[str], caps: list[int]) -> None:
        if not keys:
            return
        now = time.time()
        try:
            refused = await self._lease(
                keys=keys, args=[int(now * 1000), int((now + LEASE_SECONDS) * 1000), session_id, *caps]
            )
        except (RedisError, OSError) as exc:
            log.warning("socket lease unavailable (%s); admitting", type(exc).__name__)
            return
        if refused:
            which = "key" if keys[int(refused) - 1].rsplit(":", 1)[-1].startswith("k") else "partner"
            raise TooManyRequests(f"Too many open WebSockets for this {which}.", code="too_many_sockets")

    async def release(self, session: Session) -> None:
        if not session.lease_keys:
            return
        with contextlib.suppress(RedisError, OSError):
            pipe = self.redis.pipeline(transaction=False)
            for key in session.lease_keys:
                pipe.zrem(key, session.id)
            await pipe.execute()

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            leased = [s for s in self.sessions if s.lease_keys]
            if not leased:
                continue
            expires = int((time.time() + LEASE_SECONDS) * 1000)
            try:
                pipe = self.redis.pipeline(transaction=False)
                for session in leased:
                    for key in session.lease_keys:
                        pipe.zadd(key, {session.id: expires}, xx=True)
                        pipe.pexpireat(key, expires)
                await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("socket lease renewal failed: %s", exc)

    # -- the session ---------------------------------------------------------------------------
    async def serve(
        self,
        ctx: RequestContext,
        url: str,
        policy: SocketPolicy,
        subprotocols: list[str],
        headers: Mapping[str, str],
        receive: Receive,
        send: Send,
        *,
        connect_timeout: float,
    ) -> tuple[int, str]:
        """Connect upstream, accept the client, relay until one side ends. Returns the close."""
        identity: Identity | None = ctx.identity
        keys, caps = self.lease_keys(identity, policy)
        session = Session(uuid.uuid4().hex, identity, [])
        await self.acquire(session.id, keys, caps)
        session.lease_keys = keys
        try:
            try:
                assert self._session is not None, "SocketRelay.start() was not awaited"
                # The handshake gets the upstream's connect timeout: an upstream that accepts the
                # TCP connection but never answers must not leave the client hanging.
                async with asyncio.timeout(connect_timeout):
                    upstream = await self._session.ws_connect(
                        url,
                        protocols=subprotocols,
                        headers=headers,
                        autoclose=False,
                        autoping=True,
                        heartbeat=self.heartbeat,
                        max_msg_size=policy.max_message_bytes + 1,
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                        compress=0,
                    )
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise GatewayTimeout() from exc
            except aiohttp.WSServerHandshakeError as exc:
                raise BadGateway(f"The upstream refused the WebSocket ({exc.status}).") from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise BadGateway() from exc
            async with upstream:
                accept: dict[str, Any] = {
                    "type": "websocket.accept",
                    "headers": [(b"x-request-id", ctx.request_id.encode())],
                }
                if upstream.protocol:
                    accept["subprotocol"] = upstream.protocol
                await send(accept)
                ctx.status = 101
                ctx.response_started = True
                self.sessions.add(session)
                route = ctx.match.route.name if ctx.match is not None else ""
                metrics.websocket_opened(route)
                if identity is not None:
                    await self._join(identity)
                try:
                    return await self._relay(session, upstream, policy, receive, send, route)
                finally:
                    self.sessions.discard(session)
                    metrics.websocket_closed(route)
                    ctx.ws_messages_up = session.messages_in
                    ctx.ws_messages_down = session.messages_out
                    if identity is not None:
                        await self._leave(identity)
        finally:
            await self.release(session)

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


def upstream_headers(ctx: RequestContext, extra: list[tuple[str, str]]) -> dict[str, str]:
    """Client headers minus hop-by-hop, handshake and gateway-owned ones, plus ours."""
    drop = HOP_BY_HOP | GATEWAY_OWNED | _HANDSHAKE | connection_tokens(ctx.headers) | {ctx.consumed_header}
    out: dict[str, str] = {}
    for name, values in ctx.headers.items():
        if name not in drop:
            out[name] = ", ".join(values)
    forwarded = out.get("x-forwarded-for")
    out["X-Forwarded-For"] = f"{forwarded}, {ctx.client_ip}" if forwarded else ctx.client_ip
    out.pop("x-forwarded-for", None)
    out["X-Forwarded-Proto"] = "wss" if ctx.scheme == "wss" else "ws"
    if ctx.header("host"):
        out["X-Forwarded-Host"] = ctx.header("host") or ""
    out["X-Request-ID"] = ctx.request_id
    if not ctx.traceparent:  # the gateway's span is the upstream's parent
        ctx.traceparent = tracing.start_trace(ctx)
    out[tracing.HEADER] = ctx.traceparent
    for name, value in extra:
        out[name] = value
    return out


def offered_subprotocols(ctx: RequestContext, allow_key: bool) -> tuple[list[str], str | None]:
    """The client's subprotocols, minus an ``apikey.<key>`` entry (returned separately when the
    route allows keys there)."""
    offered: list[str] = []
    key = None
    for value in ctx.headers.get("sec-websocket-protocol", ()):
        for token in value.split(","):
            token = token.strip()
            if not token:
                continue
            if token.startswith(KEY_SUBPROTOCOL):
                if allow_key:
                    key = token[len(KEY_SUBPROTOCOL) :]
                continue
            offered.append(token)
    return offered, key


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
