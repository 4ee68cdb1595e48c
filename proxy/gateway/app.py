"""The gateway as a raw ASGI application: lifecycle and wiring.

A request's life is two files: pipeline.py admits it (match → authenticate → limit → the
upstream request), upstream.py forwards it (or websocket.py relays the socket); the log phase
(accesslog.py, metrics) runs when the response is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from proxy.gateway import accesslog, metrics
from proxy.gateway.auth import Authenticator
from proxy.gateway.cache import Cache
from proxy.gateway.circuits import CircuitRegistry
from proxy.gateway.config import GatewayConfig
from proxy.gateway.context import RequestContext
from proxy.gateway.drain import Drain
from proxy.gateway.errors import GatewayError
from proxy.gateway.iprules import ClientAddress
from proxy.gateway.pipeline import Admission
from proxy.gateway.ratelimit import Limiter
from proxy.gateway.redis_cluster import script_connection
from proxy.gateway.redis_urls import async_client, is_cluster
from proxy.gateway.snapshot import ConfigStore, SnapshotLoader
from proxy.gateway.tasks import cancel_all
from proxy.gateway.types import Receive, Scope, Send
from proxy.gateway.upstream import ClientGone, Forwarder
from proxy.gateway.vocabulary import RedisKeys
from proxy.gateway.websocket import SocketRelay, reject

log = logging.getLogger("apigw.gateway")
_JSON = (b"content-type", b"application/json")


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
        self.keys = RedisKeys(config.redis_prefix, cluster=is_cluster(config.redis_url))
        self.redis = async_client(
            config.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0, health_check_interval=30
        )
        self.store = ConfigStore(config, loader, self.redis, self.keys)
        # SIGTERM: readiness 503, event streams end, WebSockets close with 1001 (drain.py).
        self.drain = Drain()
        self.started = False
        self._starting: asyncio.Lock | None = None
        self.forwarder = Forwarder(config, self.drain)
        self.authenticator = Authenticator(config.api_key_pepper)
        # The limiter has its own client: short timeouts, so a hung Redis costs a request at most
        # that long before the failure policy applies (and then nothing, for the back-off period).
        self.limiter_conn = script_connection(config.redis_url, timeout=0.5)
        self.limiter = Limiter(self.limiter_conn, self.keys, config.limiter_policy)
        self.sockets = SocketRelay(
            self.redis,
            self.keys,
            idle_timeout=config.ws_idle_timeout,
            max_lifetime=config.ws_max_lifetime,
            heartbeat=config.ws_ping_interval,
            channel_layer=channel_layer,
        )
        self.store.on_swap.append(lambda snapshot: self.sockets.revocations.revalidate(snapshot.auth))
        self.drain.on_begin.append(self._sockets_going_away)
        # Upstream resilience and traffic policies (circuits.py, cache.py, iprules.py).
        self.health = CircuitRegistry(self.redis, self.keys, poll_seconds=config.health_poll_seconds)
        self.store.on_swap.append(lambda snapshot: self.health.bind(snapshot.upstreams))
        self.store.on_swap.append(self.forwarder.retain)
        # The cache's own client, with the limiter's short timeouts: a hung Redis costs a lookup
        # at most that long, then the cache is bypassed for a second.
        self.cache_redis = async_client(config.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
        self.cache = Cache(self.cache_redis, self.keys)
        self.admission = Admission(
            authenticator=self.authenticator,
            keys=self.keys,
            client_ips=ClientAddress(config.trusted_proxies),
            via=config.via,
            limiter=self.limiter,
            cache=self.cache,
        )

    async def startup(self) -> None:
        accesslog.start()
        await self.forwarder.start()
        await self.health.start(self.forwarder.session)
        await self.store.start()
        await self.limiter.start()
        await self.sockets.start()
        self._maintenance_tasks = [
            asyncio.create_task(self._every(interval, job), name=f"maintenance-{getattr(job, '__name__', job)}")
            for interval, job in self.maintenance
        ]
        if metrics.BUFFERED:  # in the loop's thread: the request series are updated there
            self._maintenance_tasks.append(asyncio.create_task(self._flush_metrics(), name="metrics-flush"))
        self.started = True

    async def ensure_started(self) -> None:
        """Start on first use, for servers that run no lifespan (daphne, i.e. ``runserver``)."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if not self.started:
                await self.startup()

    def _sockets_going_away(self) -> None:
        for session in list(self.sockets.sessions):
            session.close(1001, "gateway shutting down")

    async def _every(self, interval: float, job: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(job)
            except Exception:  # a failing job (database down) retries next time; never dies
                log.exception("maintenance job %s failed", getattr(job, "__name__", job))

    @staticmethod
    async def _flush_metrics() -> None:
        while True:
            await asyncio.sleep(metrics.FLUSH_SECONDS)
            metrics.flush()

    async def shutdown(self) -> None:
        await cancel_all(self._maintenance_tasks)
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
        accesslog.stop()  # every line of a request that finished is written before the exit
        metrics.flush()  # and counted in /metrics

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
                self.drain.install_signal_handlers()  # after the server's own: they are chained
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                finally:
                    # Even if a pool failed to close: uvicorn ends a SIGTERMed process by raising
                    # the signal again, no atexit hook runs, and queued lines would be lost.
                    accesslog.stop()
                    metrics.flush()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = RequestContext.from_scope(scope)
        try:
            admitted = await self.admission.admit(ctx, self.store.snapshot)
            if admitted.preflight is not None:
                await self.send_preflight(ctx, admitted.preflight, send)
            elif admitted.hit is not None:
                ctx.response_headers.extend(self.cache.hit_headers(admitted.hit))
                await self.forwarder.replay(ctx, admitted.hit, admitted.traffic, send)
            else:
                await self.forwarder.forward(ctx, admitted, receive, send)
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

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """WebSocket passthrough (websocket.py), admitted at the handshake like any request."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        ctx = RequestContext.from_scope(scope)
        try:
            admitted = await self.admission.admit(ctx, self.store.snapshot, protocol="websocket")
            upstream = admitted.upstream
            assert upstream is not None
            connect = admitted.traffic.connect_timeout or upstream.connect_timeout or self.config.connect_timeout
            code, _ = await self.sockets.serve(ctx, admitted, receive, send, connect_timeout=connect)
            ctx.error_code = f"close_{code}"
        except GatewayError as exc:
            ctx.error_code = exc.code
            ctx.status = exc.status_code
            if not ctx.response_started:
                await reject(scope, send, exc, ctx.request_id)
        finally:
            ctx.upstream_finished = time.perf_counter()
            accesslog.emit(ctx)

    async def send_preflight(self, ctx: RequestContext, headers: list[tuple[bytes, bytes]], send: Send) -> None:
        ctx.status = 204
        ctx.response_started = True
        headers.append((b"x-request-id", ctx.request_id.encode()))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def send_error(self, ctx: RequestContext, exc: GatewayError, send: Send) -> None:
        body = exc.body(ctx.request_id)
        headers = [
            _JSON,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", ctx.request_id.encode()),
            *exc.headers,
            *ctx.response_headers,
        ]
        if ctx.body_timed_out or ctx.body_too_large:
            # The rest of the body was never read: this connection cannot carry another request.
            headers.append((b"connection", b"close"))
        ctx.status = exc.status_code
        ctx.response_started = True
        await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body if ctx.method != "HEAD" else b""})
