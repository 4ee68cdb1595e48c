"""The gateway as a raw ASGI application: match → authenticate → limit → forward → log."""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

import redis.asyncio as aioredis

from proxy.gateway import accesslog
from proxy.gateway.config import GatewayConfig
from proxy.gateway.context import RequestContext
from proxy.gateway.errors import BadRequest, GatewayError, ServiceUnavailable
from proxy.gateway.headers import request_id_from
from proxy.gateway.redis_keys import RedisKeys
from proxy.gateway.routing import resolve_dot_segments, split_host
from proxy.gateway.snapshot import ConfigStore, SnapshotLoader
from proxy.gateway.types import Receive, Scope, Send
from proxy.gateway.upstream import ClientGone, Forwarder

log = logging.getLogger("apigw.gateway")
_JSON = (b"content-type", b"application/json")
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class Gateway:
    def __init__(self, config: GatewayConfig, loader: SnapshotLoader) -> None:
        self.config = config
        self.keys = RedisKeys(config.redis_prefix)
        self.redis = aioredis.Redis.from_url(
            config.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0, health_check_interval=30
        )
        self.store = ConfigStore(config, loader, self.redis, self.keys)
        self.forwarder = Forwarder(config)

    async def startup(self) -> None:
        await self.forwarder.start()
        await self.store.start()

    async def shutdown(self) -> None:
        await self.store.stop()
        await self.forwarder.close()
        await self.redis.aclose()

    def context(self, scope: Scope) -> RequestContext:
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        headers: dict[str, list[str]] = {}
        for name, value in raw_headers:
            headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        request_ids = headers.get("x-request-id")
        client = scope.get("client")
        host_values = headers.get("host")
        return RequestContext(
            method=scope["method"],
            path=scope["path"],
            raw_path=scope.get("raw_path") or b"",
            query_string=scope.get("query_string", b""),
            raw_headers=raw_headers,
            headers=headers,
            host=split_host(host_values[0]) if host_values else "",
            scheme=scope.get("scheme", "http"),
            client_ip=client[0] if client else "",
            request_id=request_id_from(request_ids[0] if request_ids else None),
            started=time.perf_counter(),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The gateway alone as an ASGI app (tests, benchmarks); apigw/asgi.py adds Django."""
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            await self.websocket(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(scope, receive, send)

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # the server must not report ready on a half-open gateway
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.context(scope)
        try:
            await self.handle(ctx, receive, send)
        except GatewayError as exc:
            if ctx.response_started:
                raise
            ctx.error_code = exc.code
            await self.send_error(ctx, exc, send)
        except ClientGone:
            ctx.status = 499  # nginx's "client closed request"; nobody reads this response
        finally:
            accesslog.emit(ctx)

    async def handle(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        snapshot = self.store.snapshot
        if snapshot is None:
            raise ServiceUnavailable("The gateway has no configuration yet.", code="not_ready")
        if not ctx.path.startswith("/"):
            raise BadRequest("The request target must be an absolute path.")
        path = resolve_dot_segments(ctx.path)
        match = snapshot.routes.match(
            host=ctx.host, path=path, method=ctx.method, headers=ctx.headers, query_string=ctx.query_string
        )
        ctx.match = match
        route = match.route
        upstream = snapshot.upstreams.get(route.upstream) if route.upstream else None
        target = upstream.pick() if upstream is not None else None
        if upstream is None or target is None:
            raise ServiceUnavailable("The API has no upstream target configured.", code="no_upstream")
        upstream_path = route.upstream_path(path, match.params, match.tail)
        if upstream_path is None:
            upstream_path = (
                ctx.raw_path.decode("latin-1") if ctx.raw_path and path == ctx.path else quote(path, safe=_PATH_SAFE)
            )
        if ctx.query_string:
            upstream_path += "?" + ctx.query_string.decode("latin-1")
        await self.forwarder.forward(ctx, upstream, target, upstream_path, receive, send)

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """WebSocket passthrough arrives with issue 6; until then the handshake is refused."""
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1003, "reason": "WebSocket routes are not enabled"})

    async def send_error(self, ctx: RequestContext, exc: GatewayError, send: Send) -> None:
        body = exc.body(ctx.request_id)
        headers = [
            _JSON,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", ctx.request_id.encode()),
            *exc.headers,
            *ctx.response_headers,
        ]
        ctx.status = exc.status_code
        ctx.response_started = True
        await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body if ctx.method != "HEAD" else b""})
