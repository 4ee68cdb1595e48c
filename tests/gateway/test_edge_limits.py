"""The edge refuses before it buffers: framing limits against a real gateway process, with raw
sockets the way an attacker would send (an endless header, a slowloris, a flood of
connections, a stalled upload), and the upstream's slots under slow requests.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from proxy import services
from proxy.models import Route, Target, Upstream
from tests.conftest import subprocess_database_url
from tests.servers import Process, free_port, gateway_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]

LIMITS = {
    "GATEWAY_MAX_URL_BYTES": "2048",
    "GATEWAY_MAX_HEADER_BYTES": "8192",
    "GATEWAY_MAX_HEADERS": "50",
    "GATEWAY_HEADER_TIMEOUT": "1.5",
    "GATEWAY_MAX_CONNECTIONS": "20",
    "GATEWAY_BODY_IDLE_TIMEOUT": "1",
}


@pytest.fixture
def gateway(demo_upstream: str) -> Iterator[Process]:
    upstream = Upstream.objects.create(name="demo")
    Target.objects.create(upstream=upstream, url=demo_upstream)
    Route.objects.create(name="open", path="/", upstream=upstream, auth="public")
    services.partner_get_or_create(slug="nobody")
    proc = gateway_process(free_port(), env={"DATABASE_URL": subprocess_database_url(), **LIMITS}).start()
    yield proc
    proc.stop()


def connect(proc: Process) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proc.port), timeout=10)


def read_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def test_a_long_request_target_is_414(gateway: Process) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"GET /" + b"a" * 4000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        response = read_all(sock)
    assert status_of(response) == 414 and b"uri_too_long" in response


def test_too_many_headers_is_431(gateway: Process) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(60))
    with connect(gateway) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        response = read_all(sock)
    assert status_of(response) == 431 and b"too_many_headers" in response


def test_an_endless_header_is_cut_before_it_is_buffered(gateway: Process) -> None:
    """200 MiB of one header value: refused after a few kB; the gateway never reads the rest."""
    with connect(gateway) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        chunk = b"a" * 65536
        try:
            while sent < 200 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = read_all(sock)
    assert sent < 20 * 1024 * 1024, "the gateway kept reading"
    assert status_of(response) in (431, 0)  # the answer may be lost in the reset of a full pipe
    assert httpx.get(f"http://127.0.0.1:{gateway.port}/healthz", timeout=5).status_code == 200


def test_headers_that_never_complete_are_timed_out(gateway: Process) -> None:
    """Slowloris: a header line every half second, never the blank line; and a silent socket."""
    started = time.monotonic()
    with connect(gateway) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        response = b""
        sock.settimeout(0.5)
        for i in range(20):
            try:
                sock.sendall(b"X-Slow-%d: 1\r\n" % i)
                response += sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if response:
                break
        response += read_all(sock, 3)
    assert status_of(response) == 408 and time.monotonic() - started < 5
    with connect(gateway) as silent:
        assert status_of(read_all(silent, 5)) == 408


def test_connections_beyond_the_cap_get_a_fast_503_and_the_others_keep_working(gateway: Process) -> None:
    held = [connect(gateway) for _ in range(20)]  # the cap
    try:
        time.sleep(0.2)
        with connect(gateway) as extra:
            response = read_all(extra, 3)
        assert status_of(response) == 503 and b"too_many_connections" in response
        first = held[0]
        first.sendall(b"GET /api/v1/appliances HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(read_all(first)) == 200
    finally:
        for sock in held:
            sock.close()


def test_a_stalled_upload_is_408(gateway: Process) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b"a" * 1000)
        started = time.monotonic()
        response = read_all(sock, 10)
    assert status_of(response) == 408 and b"request_timeout" in response
    assert time.monotonic() - started < 5


def test_slow_requests_cannot_starve_an_upstream_for_everyone(static_gateway: Any, demo_upstream: str) -> None:
    """With two slots, two slow calls hold them; the next caller gets a fast 503, not a 504
    after the connect timeout, and the targets are not blamed."""
    import concurrent.futures

    data = {
        "upstreams": [{"name": "demo", "targets": [{"url": demo_upstream, "weight": 1}]}],
        "routes": [{"name": "open", "path": "/", "upstream": "demo", "auth": "public"}],
    }
    server = static_gateway(data, upstream_pool_size=2, upstream_queue_timeout=0.3)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(httpx.get, server.url + "/slow/2", timeout=10) for _ in range(2)]
        time.sleep(0.5)
        started = time.monotonic()
        busy = httpx.get(server.url + "/api/v1/appliances", timeout=10)
        waited = time.monotonic() - started
        assert [f.result().status_code for f in slow] == [200, 200]
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "upstream_busy"
    assert busy.headers["retry-after"] == "1" and waited < 1.5
    assert httpx.get(server.url + "/api/v1/appliances", timeout=10).status_code == 200


def test_a_huge_body_on_a_django_path_is_refused_while_it_arrives(gateway: Process) -> None:
    """Django would spool the whole body to disk before CSRF or login run."""
    with connect(gateway) as sock:
        sock.sendall(b"POST /portal/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 419430400\r\n\r\n")
        declared = read_all(sock)
    assert status_of(declared) == 413 and b"payload_too_large" in declared
    with connect(gateway) as sock:
        sock.sendall(b"POST /portal/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
        try:
            while sent < 400 * 1024 * 1024:
                sock.sendall(chunk)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        streamed = read_all(sock)
    assert sent < 100 * 1024 * 1024, "Django kept reading"
    assert status_of(streamed) in (413, 0)  # the answer may be lost in the reset of a full pipe


def test_a_deflated_websocket_message_is_capped_before_it_is_inflated(demo_upstream: str) -> None:
    """15 MiB of zeros deflate to a few kB on the wire: the server must stop at the cap."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect as ws_connect

    from tests.upstreams import WebSocketUpstream

    upstream = WebSocketUpstream().start()
    try:
        target = Upstream.objects.create(name="sockets")
        Target.objects.create(upstream=target, url=upstream.url)
        Route.objects.create(name="ws", path="/ws", upstream=target, protocols=["websocket"], auth="public")
        env = {"DATABASE_URL": subprocess_database_url(), "GATEWAY_WS_MAX_MESSAGE_BYTES": "1048576"}
        proc = gateway_process(free_port(), env=env).start()
        try:
            with ws_connect(f"ws://127.0.0.1:{proc.port}/ws", open_timeout=10, max_size=None) as ws:
                ws.send("small")
                assert ws.recv(timeout=5) == "small"
                ws.send(b"\0" * (15 * 1024 * 1024))
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        finally:
            proc.stop()
    finally:
        upstream.stop()
