"""Scenario (c-httpx): the bare passthrough of (c) on httpx, the control plane's HTTP client.

Kept as a row of its own so the reason the data plane does not forward with httpx stays
visible with numbers (the design brief measured ≈ 410 requests/s against aiohttp's ≈ 3,270).
"""

from __future__ import annotations

import os
from typing import Any

import httpx

UPSTREAM = os.environ.get("BENCH_UPSTREAM_URL", "http://127.0.0.1:8080")
_client: httpx.AsyncClient | None = None
_DROP = (b"connection", b"transfer-encoding", b"content-length")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _client
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # As many connections as wrk opens, so the pool is not what limits it.
                limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
                _client = httpx.AsyncClient(limits=limits, timeout=10.0)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _client is not None:
                    await _client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _client is not None and scope["type"] == "http"
    response = await _client.request(scope["method"], UPSTREAM + scope["path"])
    body = response.content
    headers = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in _DROP]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
