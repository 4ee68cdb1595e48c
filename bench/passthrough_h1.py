"""Scenario (c2): the Python ceiling on the gateway's own client — uvicorn + raw ASGI + the
keep-alive pool of ``proxy/gateway/h1pool.py``, next to (c) on aiohttp.

Forwards every request to ``BENCH_UPSTREAM_URL`` and relays status, headers and body; nothing
else (no streaming of request bodies: the benchmark sends GETs).
"""

from __future__ import annotations

import os
from typing import Any

from proxy.gateway.balancer import Target
from proxy.gateway.h1client import encode_head
from proxy.gateway.h1pool import TargetPool, UpstreamClient

UPSTREAM = Target.parse(os.environ.get("BENCH_UPSTREAM_URL", "http://127.0.0.1:8080"))
_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding"})
_client: UpstreamClient | None = None
_pool: TargetPool | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _client, _pool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _client = UpstreamClient(256)
                _pool = _client.pool(UPSTREAM)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _client is not None:
                    _client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _pool is not None and scope["type"] == "http"
    conn = await _pool.acquire(5.0)
    try:
        conn.begin(scope["method"] == "HEAD", 60.0)
        conn.write(encode_head(scope["method"], scope["raw_path"].decode(), [("Host", UPSTREAM.authority)], ""))
        await conn.response_head()
        chunks = []
        while True:
            chunk = conn.read_nowait()  # the client's cheapest read, as the gateway's relay uses it
            if chunk is None:
                chunk = await conn.read()
            if not chunk:
                break
            chunks.append(chunk)
        headers = [(k, v) for k, v in conn.headers if k not in _HOP]  # names come lower-cased
        await send({"type": "http.response.start", "status": conn.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})
    finally:
        conn.release()
