"""A client that goes away takes its upstream stream with it (issue 19, item 1).

Real parts: an aiohttp upstream in a thread that streams forever and notes when its client (the
gateway) hangs up, the gateway served by uvicorn, and clients on raw sockets that close
mid-response the way `curl -N` does on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from tests.servers import wait_until
from tests.upstreams import AiohttpUpstream

pytestmark = pytest.mark.timeout(60)


class EndlessUpstream(AiohttpUpstream):
    """``/events``: an event at once, then one every 0.2 s, forever. ``/download``: 200 MB
    announced, 64 KiB every 0.05 s. Each notes when its connection ended."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: list[tuple[str, float]] = []

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b"data: tick\n\n")
                await asyncio.sleep(0.2)
        finally:
            self.ended.append(("events", time.monotonic()))

    async def _download(self, request: web.Request) -> web.StreamResponse:
        size = 200 * 1024 * 1024
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        try:
            for _ in range(size // 65536):
                await response.write(b"x" * 65536)
                await asyncio.sleep(0.05)
        finally:
            self.ended.append(("download", time.monotonic()))
        return response

    async def _quick(self, request: web.Request) -> web.Response:
        return web.Response(text="quick")

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/events", self._events)
        app.router.add_get("/download", self._download)
        app.router.add_get("/quick", self._quick)


@pytest.fixture
def endless() -> Iterator[EndlessUpstream]:
    server = EndlessUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def gateway(static_gateway: Any, endless: EndlessUpstream) -> Any:
    data = {
        "upstreams": [{"name": "endless", "targets": [{"url": endless.url, "weight": 1}]}],
        "routes": [{"name": "endless", "path": "/", "path_type": "prefix", "upstream": "endless", "auth": "public"}],
    }
    # One pooled connection per target: a stream left running would make the next request wait
    # for it (and time out after connect_timeout), which is what the tests below rule out.
    return static_gateway(data, upstream_pool_size=1, connect_timeout=3.0)


def read_then_hang_up(port: int, path: str, until: bytes) -> float:
    """GET ``path``, read until ``until`` arrives, close the socket; the time it was closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        seen = b""
        while until not in seen:
            chunk = sock.recv(65536)
            assert chunk, "the gateway closed first"
            seen = seen[-1024:] + chunk
        return time.monotonic()


def requests_with_status(route: str, status: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if (
                sample.name == "apigw_requests_total"
                and sample.labels.get("route") == route
                and sample.labels.get("status") == status
            ):
                total += sample.value
    return total


@pytest.mark.parametrize(
    ("path", "until", "kind"), [("/events", b"data: tick", "events"), ("/download", b"xxxx", "download")]
)
def test_the_upstream_is_closed_as_soon_as_the_client_goes(
    gateway: Any, endless: EndlessUpstream, path: str, until: bytes, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apigw.access")
    before = requests_with_status("endless", "499")
    hung_up = read_then_hang_up(gateway.port, path, until)
    time.sleep(1.5)  # the upstream would go on streaming all this time
    # Before the fix the upstream streamed on for nobody until it ended by itself (never here).
    wait_until(lambda: any(name == kind for name, _ in endless.ended), timeout=10)
    ended = next(at for name, at in endless.ended if name == kind)
    assert ended - hung_up < 5  # generous: it is milliseconds
    # Logged and counted the way nginx does: 499, client closed request, lasting until the
    # disconnect (not until the upstream would have ended: 67 s and 52 s in the issue).
    wait_until(lambda: requests_with_status("endless", "499") == before + 1, timeout=5)
    lines = [r for r in caplog.records if r.name == "apigw.access" and " 499 " in r.getMessage()]
    assert len(lines) == 1
    duration = lines[0].ecs_fields["event"]["duration"] / 1e9  # type: ignore[attr-defined]
    assert duration < 1.0  # the client stayed milliseconds; 1.5 s would mean logged late
    # The one pooled connection is free again: the next request does not wait for it.
    response = httpx.get(gateway.url + "/quick", timeout=10)
    assert response.status_code == 200
    assert response.text == "quick"


def test_a_complete_stream_is_not_a_499(gateway: Any) -> None:
    before = requests_with_status("endless", "200")
    for _ in range(3):  # the pool of one is reused each time
        assert httpx.get(gateway.url + "/quick", timeout=10).text == "quick"
    wait_until(lambda: requests_with_status("endless", "200") == before + 3, timeout=5)
