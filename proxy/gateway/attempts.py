"""Which target gets the next attempt, and when to try another: one loop for every way the
gateway talks to an upstream (HTTP forwarding in upstream.py, WebSocket handshakes in
websocket.py), so passive health, the circuit breaker and retries hold for both.

The balancer chooses among targets whose circuit is closed, skipping the ones already tried;
an attempt that fails before any byte reached the application (``CONNECTION_FAILURES``) may
go to another target while the upstream's retry budget allows it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

from proxy.gateway.balancer import Target, Upstream
from proxy.gateway.context import RequestContext
from proxy.gateway.errors import GatewayError, ServiceUnavailable

T = TypeVar("T")

# Failures before any response byte, where the request did not reach the application or an
# idempotent one may safely be sent again. Read timeouts are not among them (see retry.py).
# These are aiohttp's, for WebSocket handshakes; HTTP forwarding's own client raises its own
# (upstream.py, h1client.py).
CONNECTION_FAILURES = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientConnectionResetError,
    aiohttp.ClientOSError,
)


class Retry(Exception):
    """This attempt failed in a way another target may fix (the retry budget is charged)."""

    def __init__(self, error: GatewayError | None = None) -> None:
        super().__init__(error.detail if error is not None else "retry")
        self.error = error


def may_retry(upstream: Upstream, retry: bool) -> bool:
    """Whether another attempt may be made now: allowed by the caller and by the budget."""
    return retry and upstream.retry_budget.withdraw(time.time())


async def each_target(
    ctx: RequestContext,
    upstream: Upstream,
    hash_key: str | None,
    retries: int,
    attempt: Callable[[int, Target, bool], Awaitable[T]],
) -> T:
    """Run ``attempt(index, target, may_retry)`` on the balancer's choice, again on another
    target each time it raises ``Retry``, at most ``retries`` more times."""
    now = time.time()
    upstream.retry_budget.request(now)
    tried: list[int] = []
    while True:
        index = upstream.choose(hash_key, tried, now)
        if index is None and tried:
            index = upstream.choose(hash_key, (), now)  # only tried targets left: one again
        if index is None:
            retry_after = str(max(1, math.ceil(upstream.retry_after(now)))).encode()
            raise ServiceUnavailable(
                "Every server of this API is unavailable; try again shortly.",
                code="no_healthy_upstream",
                headers=[(b"retry-after", retry_after)],
            )
        tried.append(index)
        target = upstream.targets[index]
        ctx.target = target
        ctx.attempts += 1
        try:
            return await attempt(index, target, retries > 0)
        except Retry as exc:
            if retries <= 0 and exc.error is not None:
                raise exc.error from exc
        retries -= 1
        now = time.time()
