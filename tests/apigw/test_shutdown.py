"""SIGTERM drains (issue 15, item 3): event streams end, WebSockets close with 1001, requests in
flight finish, the process exits well before the drain deadline. A real gateway process, the
demo upstream, real SSE and WebSocket clients."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from django.db.models import Sum
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from proxy import services
from proxy.models import ApiProduct, Plan, Route, Target, Upstream, UsageHourly
from tests.conftest import subprocess_database_url
from tests.servers import free_port, gateway_process, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

DRAIN_SECONDS = 15


@pytest.fixture
def routes(demo_upstream: str) -> None:
    upstream = Upstream.objects.create(name="drain-demo")
    Target.objects.create(upstream=upstream, url=demo_upstream)
    Route.objects.create(name="drain-http", upstream=upstream, path="/", auth="public")
    Route.objects.create(
        name="drain-ws", upstream=upstream, path="/api/v1/events/ws", auth="public", protocols=["websocket"]
    )


def open_event_stream(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    seen = b""
    while b"data:" not in seen:
        chunk = sock.recv(65536)
        assert chunk, "stream closed before its first event"
        seen += chunk
    return sock


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the server closes (bounded by the socket timeout)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_sigterm_ends_streams_closes_sockets_finishes_requests_and_exits_early(routes: None) -> None:
    port = free_port()
    proc = gateway_process(
        port,
        env={"DATABASE_URL": subprocess_database_url()},
        extra_args=("--timeout-graceful-shutdown", str(DRAIN_SECONDS)),
    ).start()
    try:
        base = f"http://127.0.0.1:{port}"
        stream = open_event_stream(port)
        ws = connect(f"ws://127.0.0.1:{port}/api/v1/events/ws", open_timeout=10).__enter__()
        assert "appliances" in str(ws.recv(timeout=10))
        slow: dict[str, Any] = {}

        def slow_request() -> None:
            slow["response"] = httpx.get(base + "/slow/2", timeout=30)

        in_flight = threading.Thread(target=slow_request)
        in_flight.start()
        time.sleep(0.5)  # the slow request is at the upstream now

        assert proc.proc is not None
        sent = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)

        # The WebSocket is closed with 1001 "going away": clients reconnect elsewhere.
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        # The event stream ends cleanly (the chunked terminator), at once.
        tail = read_to_end(stream)
        assert tail.endswith(b"0\r\n\r\n"), tail[-200:]
        stream_ended = time.monotonic() - sent
        # No new connections meanwhile: the load balancer goes elsewhere.
        wait_until(lambda: refused(port), timeout=5)
        assert in_flight.is_alive()  # while the request in flight is still being served
        # The request in flight completes.
        in_flight.join(timeout=30)
        assert slow["response"].status_code == 200
        proc.proc.wait(timeout=DRAIN_SECONDS + 10)
        exited = time.monotonic() - sent
    finally:
        proc.stop()
    # uvicorn re-raises the signal it handled once it is done, as the default action expects.
    assert proc.proc.returncode in (0, -signal.SIGTERM), proc.output()
    assert "Traceback" not in proc.output()
    # Before: uvicorn waited for the stream until its deadline (or forever without one).
    assert stream_ended < 5
    assert exited < DRAIN_SECONDS - 5, exited
    print(f"SIGTERM: stream ended after {stream_ended:.2f} s, process exited after {exited:.2f} s")


def test_sigterm_flushes_the_usage_counted_so_far_even_with_a_stream_open(demo_upstream: str) -> None:
    upstream = Upstream.objects.create(name="drain-keyed")
    Target.objects.create(upstream=upstream, url=demo_upstream)
    product = ApiProduct.objects.create(name="Drain", slug="drain-product")
    plan = Plan.objects.create(name="Drain", slug="drain-plan", scope="key", per_minute=1000)
    Route.objects.create(name="drain-keyed", upstream=upstream, path="/api/v1", product=product)
    partner = services.partner_get_or_create(slug="drain-partner")
    services.subscription_set(partner=partner, product=product, plan=plan)
    _, secret = services.api_key_create(partner=partner, name="k")
    port = free_port()
    proc = gateway_process(
        port,
        # No periodic flush during the test: only the one at shutdown can move the counts.
        env={"DATABASE_URL": subprocess_database_url(), "USAGE_FLUSH_SECONDS": "3600"},
        extra_args=("--timeout-graceful-shutdown", str(DRAIN_SECONDS)),
    ).start()
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(5):
            response = httpx.get(base + "/api/v1/appliances", headers={"X-API-Key": secret}, timeout=10)
            assert response.status_code == 200, response.text
        stream = socket.create_connection(("127.0.0.1", port), timeout=15)
        stream.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {secret}\r\n\r\n".encode())
        assert b"data:" in stream.recv(65536) or b"data:" in stream.recv(65536)
        assert proc.proc is not None
        sent = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        proc.proc.wait(timeout=DRAIN_SECONDS + 10)
        exited = time.monotonic() - sent
        stream.close()
    finally:
        proc.stop()
    assert exited < DRAIN_SECONDS - 5, exited
    assert UsageHourly.objects.aggregate(n=Sum("requests"))["n"] == 6  # five requests and the stream
    print(f"SIGTERM with an event stream open: process exited after {exited:.2f} s, usage flushed")
