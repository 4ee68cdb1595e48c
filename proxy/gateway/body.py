"""The client's request body on its way upstream: its declared length and limit, its chunks,
and whether it can be sent again (retry.py).

Bodies stream chunk by chunk; the limit (the route's ``max_body_bytes`` or
``GATEWAY_MAX_BODY_BYTES``) is checked against the declared length first (413 before anything
is sent upstream) and against the bytes received for chunked bodies. A body that stalls longer
than ``GATEWAY_BODY_IDLE_TIMEOUT`` between chunks, or takes longer than
``GATEWAY_UPLOAD_TIMEOUT`` in all, is cut with 408: while it streams it holds an upstream
connection, and a slow client must not hold one for ever (nginx ``client_body_timeout``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from proxy.gateway.context import RequestContext
from proxy.gateway.errors import BadRequest, PayloadTooLarge, RequestTimeout
from proxy.gateway.types import Receive


class ClientGone(Exception):
    """The client disconnected; there is nobody left to answer."""


def declared_length(ctx: RequestContext, limit: int) -> int | None:
    """Declared length (0 when the request has no body), None when chunked."""
    if "transfer-encoding" in ctx.headers:
        return None
    values = ctx.headers.get("content-length")
    if not values:
        return 0
    if len(set(values)) != 1 or not values[0].isdigit():
        raise BadRequest("Content-Length is not a valid number.")
    length = int(values[0])
    if length > limit:
        raise PayloadTooLarge(f"The request body may be at most {limit} bytes.")
    return length


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_bytes: int
    idle_timeout: float = 30.0
    upload_timeout: float = 300.0


async def chunks(ctx: RequestContext, receive: Receive, limits: BodyLimits) -> AsyncIterator[bytes]:
    received = 0
    limit = limits.max_bytes
    deadline = time.monotonic() + limits.upload_timeout
    while True:
        try:
            async with asyncio.timeout(min(limits.idle_timeout, max(0.0, deadline - time.monotonic()))):
                message = await receive()
        except TimeoutError:
            ctx.body_timed_out = True
            raise RequestTimeout() from None
        if message["type"] == "http.disconnect":
            ctx.client_gone = True
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            received += len(chunk)
            if received > limit:
                ctx.body_too_large = True
                raise PayloadTooLarge(f"The request body may be at most {limit} bytes.")
            yield chunk
        if not message.get("more_body", False):
            return


class Upload:
    """A streamed body as aiohttp reads it. It can be offered to another attempt as long as no
    chunk has been read yet (the connection failed first)."""

    __slots__ = ("ctx", "receive", "limits", "chunks", "started", "finished")

    def __init__(self, ctx: RequestContext, receive: Receive, limits: BodyLimits) -> None:
        self.ctx = ctx
        self.receive = receive
        self.limits = limits
        self.chunks: AsyncIterator[bytes] | None = None
        self.started = False
        self.finished = False  # all of it was read: receive() now only reports a disconnect

    def __aiter__(self) -> Upload:
        return self

    async def __anext__(self) -> bytes:
        if self.chunks is None:
            self.started = True
            self.chunks = chunks(self.ctx, self.receive, self.limits)
        try:
            return await self.chunks.__anext__()
        except StopAsyncIteration:
            self.finished = True
            raise
