"""Phase 4, forward: stream the request to a target and the response back to the client.

One ``aiohttp.ClientSession`` per process (pooled keep-alive connections; httpx measured 8x
slower under concurrency here). Bodies stream both ways chunk by chunk, so a 100 MB upload or
download never sits in memory and server-sent events reach the client as they are produced.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
from multidict import CIMultiDict

from proxy.gateway.balancer import Target, Upstream
from proxy.gateway.config import GatewayConfig
from proxy.gateway.context import RequestContext
from proxy.gateway.errors import BadGateway, BadRequest, GatewayError, GatewayTimeout, PayloadTooLarge
from proxy.gateway.headers import GATEWAY_OWNED, HOP_BY_HOP, connection_tokens, filter_response_headers
from proxy.gateway.types import Receive, Send

# aiohttp would otherwise add its own User-Agent, Accept and Accept-Encoding: the upstream must
# see what the client sent, nothing more.
_SKIP_AUTO = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})
_NO_BODY_STATUS = frozenset({204, 304})


class ClientGone(Exception):
    """The client disconnected; there is nobody left to answer."""


class Forwarder:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.via = f"1.1 {config.via}"
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=self.config.upstream_pool_size,
            ttl_dns_cache=30,
            enable_cleanup_closed=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # Never share cookies between callers, never decode: pass bytes through untouched.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timeout(self, upstream: Upstream) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None,
            connect=upstream.connect_timeout or self.config.connect_timeout,
            sock_read=upstream.read_timeout or self.config.read_timeout,
        )

    def request_headers(self, ctx: RequestContext, target: Target, preserve_host: bool) -> CIMultiDict[str]:
        drop = HOP_BY_HOP | GATEWAY_OWNED | connection_tokens(ctx.headers)
        if ctx.consumed_header:
            drop = drop | {ctx.consumed_header}
        out: CIMultiDict[str] = CIMultiDict()
        for raw_name, raw_value in ctx.raw_headers:
            name = raw_name.decode("latin-1").lower()
            if name not in drop:
                out.add(name, raw_value.decode("latin-1"))
        if "content-length" in ctx.headers and "transfer-encoding" not in ctx.headers:
            out["Content-Length"] = ctx.headers["content-length"][0]
        original_host = ctx.header("host") or ""
        out["Host"] = original_host if preserve_host and original_host else target.authority
        forwarded_for = out.get("X-Forwarded-For")
        out["X-Forwarded-For"] = f"{forwarded_for}, {ctx.client_ip}" if forwarded_for else ctx.client_ip
        out["X-Forwarded-Proto"] = ctx.scheme
        if original_host:
            out["X-Forwarded-Host"] = original_host
        out["Via"] = self.via
        out["X-Request-ID"] = ctx.request_id
        for name, value in ctx.upstream_headers:
            out[name] = value
        return out

    def body_length(self, ctx: RequestContext) -> int | None:
        """Declared length (0 when the request has no body), None when chunked."""
        if "transfer-encoding" in ctx.headers:
            return None
        values = ctx.headers.get("content-length")
        if not values:
            return 0
        if len(set(values)) != 1 or not values[0].isdigit():
            raise BadRequest("Content-Length is not a valid number.")
        length = int(values[0])
        if length > self.config.max_body_bytes:
            raise PayloadTooLarge(f"The request body may be at most {self.config.max_body_bytes} bytes.")
        return length

    async def _body(self, ctx: RequestContext, receive: Receive) -> AsyncIterator[bytes]:
        limit = self.config.max_body_bytes
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                ctx.client_gone = True
                raise ClientGone()
            chunk = message.get("body", b"")
            if chunk:
                received += len(chunk)
                if received > limit:
                    ctx.body_too_large = True
                    raise PayloadTooLarge()
                yield chunk
            if not message.get("more_body", False):
                return

    async def forward(
        self, ctx: RequestContext, upstream: Upstream, target: Target, upstream_path: str, receive: Receive, send: Send
    ) -> None:
        assert self._session is not None, "Forwarder.start() was not awaited"
        assert ctx.match is not None
        length = self.body_length(ctx)
        data = None if length == 0 else self._body(ctx, receive)
        url = target.url + upstream_path
        headers = self.request_headers(ctx, target, ctx.match.route.preserve_host)
        ctx.target = target
        ctx.upstream_started = time.perf_counter()
        try:
            async with self._session.request(
                ctx.method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=self._timeout(upstream),
                compress=None,
                chunked=None,
            ) as response:
                await self._relay(ctx, response, send)
        except GatewayError:
            raise
        except ClientGone:
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            if ctx.response_started:
                raise
            raise GatewayTimeout() from exc
        except (aiohttp.ClientError, OSError) as exc:
            if ctx.body_too_large:
                raise PayloadTooLarge(f"The request body may be at most {self.config.max_body_bytes} bytes.") from exc
            if ctx.client_gone:
                raise ClientGone() from exc
            if ctx.response_started:
                raise
            raise BadGateway() from exc
        finally:
            ctx.upstream_finished = time.perf_counter()

    async def _relay(self, ctx: RequestContext, response: aiohttp.ClientResponse, send: Send) -> None:
        headers = filter_response_headers(response.raw_headers)
        headers.append((b"via", self.via.encode()))
        headers.append((b"x-request-id", ctx.request_id.encode()))
        headers.extend(ctx.response_headers)
        ctx.status = response.status
        ctx.response_started = True
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if ctx.method == "HEAD" or response.status in _NO_BODY_STATUS:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        content = response.content
        while True:
            chunk = await content.readany()
            if not chunk:
                break
            ctx.bytes_sent += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
