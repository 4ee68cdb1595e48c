"""The gateway as a raw ASGI application: match → authenticate → limit → forward → log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import redis.asyncio as aioredis

from proxy.gateway import accesslog
from proxy.gateway.auth import Authenticator, Identity
from proxy.gateway.cache import Cache
from proxy.gateway.config import GatewayConfig
from proxy.gateway.context import RequestContext
from proxy.gateway.cors import preflight_method
from proxy.gateway.errors import BadRequest, Forbidden, GatewayError, ServiceUnavailable
from proxy.gateway.headers import request_id_from
from proxy.gateway.health import Health
from proxy.gateway.iprules import ClientAddress
from proxy.gateway.policy import DEFAULT, TrafficPolicy, hash_value
from proxy.gateway.ratelimit import Check, Limiter
from proxy.gateway.redis_keys import RedisKeys
from proxy.gateway.resp import ScriptConnection
from proxy.gateway.routing import Route, RouteMatch, resolve_dot_segments, split_host
from proxy.gateway.snapshot import ConfigStore, Snapshot, SnapshotLoader
from proxy.gateway.types import Receive, Scope, Send
from proxy.gateway.upstream import ClientGone, Forwarder
from proxy.gateway.websocket import SocketPolicy, SocketRelay, offered_subprotocols, reject
from proxy.gateway.websocket import upstream_headers as ws_upstream_headers

log = logging.getLogger("apigw.gateway")
_JSON = (b"content-type", b"application/json")
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        loader: SnapshotLoader,
        maintenance: Sequence[tuple[float, Callable[[], Any]]] = (),
        channel_layer: Any = None,
    ) -> None:
        """``maintenance``: (interval seconds, blocking callable) pairs run in a worker thread in
        the background, e.g. the usage flush into the database (which the data plane cannot
        import itself)."""
        self.config = config
        self.maintenance = maintenance
        self._maintenance_tasks: list[asyncio.Task[None]] = []
        self.keys = RedisKeys(config.redis_prefix)
        self.redis = aioredis.Redis.from_url(
            config.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0, health_check_interval=30
        )
        self.store = ConfigStore(config, loader, self.redis, self.keys)
        self.forwarder = Forwarder(config)
        self.authenticator = Authenticator(config.api_key_pepper)
        # The limiter has its own client: short timeouts, so a hung Redis costs a request at most
        # that long before the failure policy applies (and then nothing, for the back-off period).
        self.limiter_conn = ScriptConnection(config.redis_url, timeout=0.5)
        self.limiter = Limiter(self.limiter_conn, self.keys, config.limiter_policy)
        self.sockets = SocketRelay(
            self.redis,
            self.keys,
            idle_timeout=config.ws_idle_timeout,
            max_lifetime=config.ws_max_lifetime,
            heartbeat=config.ws_ping_interval,
            channel_layer=channel_layer,
        )
        self.store.on_swap.append(lambda snapshot: self.sockets.revalidate(snapshot.auth))
        # Upstream resilience and traffic policies (health.py, cache.py, iprules.py).
        self.health = Health(self.redis, self.keys, poll_seconds=config.health_poll_seconds)
        self.store.on_swap.append(lambda snapshot: self.health.bind(snapshot.upstreams))
        # The cache's own client, with the limiter's short timeouts: a hung Redis costs a lookup
        # at most that long, then the cache is bypassed for a second.
        self.cache_redis = aioredis.Redis.from_url(config.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
        self.cache = Cache(self.cache_redis, self.keys)
        self.client_ips = ClientAddress(config.trusted_proxies)

    async def startup(self) -> None:
        await self.forwarder.start()
        await self.health.start(self.forwarder.session)
        await self.store.start()
        await self.limiter.start()
        await self.sockets.start()
        self._maintenance_tasks = [
            asyncio.create_task(self._every(interval, job), name=f"maintenance-{getattr(job, '__name__', job)}")
            for interval, job in self.maintenance
        ]

    async def _every(self, interval: float, job: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(job)
            except Exception:  # a failing job (database down) retries next time; never dies
                log.exception("maintenance job %s failed", getattr(job, "__name__", job))

    async def shutdown(self) -> None:
        for task in self._maintenance_tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.sockets.stop()
        await self.limiter.stop()
        for _, job in self.maintenance:  # one last run, e.g. flush counted usage now
            with contextlib.suppress(Exception):
                await asyncio.to_thread(job)
        await self.store.stop()
        await self.health.stop()
        await self.cache.close()
        await self.forwarder.close()
        await self.authenticator.close()
        self.limiter_conn.close()
        await self.cache_redis.aclose()
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
            method=scope.get("method", "GET"),  # WebSocket scopes have none
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
            self.limiter.record_response(ctx)
            accesslog.emit(ctx)

    async def handle(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        snapshot = self.store.snapshot
        if snapshot is None:
            raise ServiceUnavailable("The gateway has no configuration yet.", code="not_ready")
        if not ctx.path.startswith("/"):
            raise BadRequest("The request target must be an absolute path.")
        self.client_address(ctx)
        path = resolve_dot_segments(ctx.path)
        preflight = preflight_method(ctx)
        match, traffic = self.match_route(snapshot, ctx, path, preflight)
        ctx.match = match
        route = match.route
        check_address(ctx, traffic)
        if traffic.cors is not None:
            if preflight is not None:
                await self.send_preflight(ctx, traffic.cors.preflight(ctx, preflight), send)
                return
            ctx.response_headers.extend(traffic.cors.response_headers(ctx))
        identity = await self.identify(ctx, snapshot, route)
        partner = identity.partner.slug if identity is not None else None
        # The cache lookup goes out now and is awaited after the limiter's call: both round trips
        # are in flight together (cache.py).
        cached = None
        if traffic.cache is not None:
            cached = self.cache.begin(ctx, traffic.cache, str(route.id or route.name), partner or "-")
        await self.limiter.check(ctx, limit_check(self.limiter, identity, route, ctx))
        if cached is not None:
            entry = await cached.entry()
            if entry is not None:
                ctx.response_headers.extend(self.cache.hit_headers(entry))
                await self.forwarder.replay(ctx, entry, traffic, send)
                return
        name = traffic.upstream_for(route.upstream, ctx, partner) if traffic.upstream_rules else route.upstream
        upstream = snapshot.upstreams.get(name) if name else None
        if upstream is None or not upstream.routable:
            raise ServiceUnavailable("The API has no upstream target configured.", code="no_upstream")
        upstream_path = route.upstream_path(path, match.params, match.tail)
        if upstream_path is None:
            upstream_path = (
                ctx.raw_path.decode("latin-1") if ctx.raw_path and path == ctx.path else quote(path, safe=_PATH_SAFE)
            )
        if ctx.query_string:
            upstream_path += "?" + ctx.query_string.decode("latin-1")
        await self.forwarder.forward(
            ctx, upstream, upstream_path, receive, send, traffic, hash_key=hash_value(upstream, ctx), cache=cached
        )

    async def identify(
        self, ctx: RequestContext, snapshot: Snapshot, route: Route, offered_key: str | None = None
    ) -> Identity | None:
        """Phase 2 for HTTP and WebSockets alike: who calls, and may they call from there."""
        identity = await self.authenticator.authenticate(ctx, route.policy, snapshot.auth, offered_key)
        ctx.identity = identity
        if identity is not None:
            ctx.upstream_headers = identity_headers(identity)
            partner_rules = snapshot.partner_ips.get(identity.partner.id)
            if partner_rules is not None and not partner_rules.permits(ctx.client_ip):
                raise Forbidden("Requests from this address are not allowed for this partner.", code="ip_denied")
        return identity

    def client_address(self, ctx: RequestContext) -> None:
        """Behind trusted proxies, the client is in X-Forwarded-For (iprules.ClientAddress)."""
        if self.client_ips:
            peer = ctx.client_ip
            client = self.client_ips.resolve(peer, ctx.headers.get("x-forwarded-for"))
            if client != peer:
                ctx.peer_ip = peer
                ctx.client_ip = client

    def match_route(
        self, snapshot: Snapshot, ctx: RequestContext, path: str, preflight: str | None
    ) -> tuple[RouteMatch, TrafficPolicy]:
        """The route and its traffic policy. A CORS preflight is matched as the request it
        announces, and answered by that route if it configures CORS; otherwise it is an
        ordinary OPTIONS request."""
        routes = snapshot.routes
        if preflight is not None:
            try:
                match = routes.match(
                    host=ctx.host, path=path, method=preflight, headers=ctx.headers, query_string=ctx.query_string
                )
            except GatewayError:
                pass
            else:
                traffic = snapshot.traffic.get(match.route.name, DEFAULT)
                if traffic.cors is not None:
                    return match, traffic
        match = routes.match(
            host=ctx.host, path=path, method=ctx.method, headers=ctx.headers, query_string=ctx.query_string
        )
        return match, snapshot.traffic.get(match.route.name, DEFAULT)

    async def send_preflight(self, ctx: RequestContext, headers: list[tuple[bytes, bytes]], send: Send) -> None:
        ctx.status = 204
        ctx.response_started = True
        headers.append((b"x-request-id", ctx.request_id.encode()))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """WebSocket passthrough (see websocket.py): match, authenticate and limit at connect."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        ctx = self.context(scope)
        try:
            snapshot = self.store.snapshot
            if snapshot is None:
                raise ServiceUnavailable("The gateway has no configuration yet.", code="not_ready")
            self.client_address(ctx)
            path = resolve_dot_segments(ctx.path)
            match = snapshot.routes.match(
                host=ctx.host,
                path=path,
                method="GET",
                headers=ctx.headers,
                query_string=ctx.query_string,
                protocol="websocket",
            )
            ctx.match = match
            route = match.route
            traffic = snapshot.traffic.get(route.name, DEFAULT)
            check_address(ctx, traffic)
            subprotocols, offered_key = offered_subprotocols(ctx, route.policy.allow_query_key)
            identity = await self.identify(ctx, snapshot, route, offered_key)
            await self.limiter.check(ctx, limit_check(self.limiter, identity, route, ctx))
            partner = identity.partner.slug if identity is not None else None
            name = traffic.upstream_for(route.upstream, ctx, partner) if traffic.upstream_rules else route.upstream
            upstream = snapshot.upstreams.get(name) if name else None
            target = upstream.pick(hash_value(upstream, ctx)) if upstream is not None else None
            if upstream is None or target is None:
                raise ServiceUnavailable("The API has no healthy upstream target.", code="no_upstream")
            ctx.target = target
            upstream_path = route.upstream_path(path, match.params, match.tail) or quote(path, safe=_PATH_SAFE)
            if ctx.query_string:
                upstream_path += "?" + ctx.query_string.decode("latin-1")
            headers = ws_upstream_headers(ctx, identity_headers(identity) if identity is not None else [])
            ctx.upstream_started = time.perf_counter()
            code, _ = await self.sockets.serve(
                ctx,
                target.url + upstream_path,
                SocketPolicy.from_spec(route.spec.get("websocket")),
                subprotocols,
                headers,
                receive,
                send,
                connect_timeout=(upstream.connect_timeout or self.config.connect_timeout),
            )
            ctx.error_code = f"close_{code}"
        except GatewayError as exc:
            ctx.error_code = exc.code
            ctx.status = exc.status_code
            if not ctx.response_started:
                await reject(scope, send, exc, ctx.request_id)
        finally:
            ctx.upstream_finished = time.perf_counter()
            accesslog.emit(ctx)

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


def check_address(ctx: RequestContext, traffic: TrafficPolicy) -> None:
    if traffic.ip_rules is not None and not traffic.ip_rules.permits(ctx.client_ip):
        raise Forbidden("Requests from this address are not allowed.", code="ip_denied")


def identity_headers(identity: Identity) -> list[tuple[str, str]]:
    """Who is calling, for the upstream. Client-sent copies were dropped (headers.GATEWAY_OWNED)."""
    headers = [("X-Partner-ID", identity.partner.slug)]
    if identity.key is not None:
        headers.append(("X-Key-ID", identity.key.prefix))
    if identity.plan is not None:
        headers.append(("X-Plan", identity.plan.slug))
    return headers


def limit_check(limiter: Limiter, identity: Identity | None, route: Route, ctx: RequestContext) -> Check:
    """The limits and usage counter of one request (see ratelimit.py for the key layout)."""
    now = time.time()
    policy = route.policy
    route_id = route.id if route.id is not None else route.name
    if identity is None:
        keys, rules = limiter.plan_check(
            subject="",
            product="",
            rules=(),
            route_id=route_id,
            route_rules=policy.rules,
            caller=f"ip{ctx.client_ip}",
            now=now,
        )
        return Check(keys, rules, "", "")
    key = identity.key
    caller = f"k{key.id}" if key is not None else f"p{identity.partner.id}"
    plan = identity.plan
    subject = caller if plan is not None and plan.scope == "key" else f"p{identity.partner.id}"
    keys, rules = limiter.plan_check(
        subject=subject,
        product=identity.product or "-",
        rules=plan.rules if plan is not None else (),
        route_id=route_id,
        route_rules=policy.rules,
        caller=caller,
        now=now,
    )
    hour = int(now // 3600)
    usage = f"{hour}|{identity.partner.id}|{key.id if key is not None else ''}|{route.id or ''}|{identity.product}"
    return Check(keys, rules, usage, f"last|{key.id}" if key is not None else "")
