"""Scenario (c): the Python ceiling for a proxy — uvicorn + raw ASGI + one aiohttp session.

Forwards every request to ``BENCH_UPSTREAM_URL`` and relays status, headers and body; nothing else.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

UPSTREAM = os.environ.get("BENCH_UPSTREAM_URL", "http://127.0.0.1:8080")
_session: aiohttp.ClientSession | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _session is not None and scope["type"] == "http"
    async with _session.request(scope["method"], UPSTREAM + scope["path"]) as response:
        body = await response.read()
        headers = [
            (k.lower(), v) for k, v in response.raw_headers if k.lower() not in (b"connection", b"transfer-encoding")
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
