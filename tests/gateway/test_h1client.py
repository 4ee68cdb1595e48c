"""The gateway's own HTTP/1.1 client (h1client.py, h1pool.py) against upstreams that misbehave.

Each upstream is a raw asyncio server on 127.0.0.1 that answers with exactly the bytes the test
scripts (tests/upstreams.py ``RawUpstream``), in front of a real gateway served by uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvloop

from tests.servers import wait_until
from tests.upstreams import RawRequest, RawUpstream

pytestmark = pytest.mark.timeout(60)

Respond = Callable[[RawRequest], Awaitable[bool]]


def answer(body: bytes = b"ok", *, status: bytes = b"200 OK", headers: bytes = b"") -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + headers + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def ok(request: RawRequest) -> bool:
    await request.body()
    await request.send(answer(request.target.encode()))
    return True


@contextlib.contextmanager
def gateway_to(
    static_gateway: Any,
    respond: Respond,
    *,
    route: dict[str, Any] | None = None,
    snapshot: Callable[[str], dict[str, Any]] | None = None,
    **upstream: Any,
) -> Iterator[tuple[RawUpstream, httpx.Client]]:
    """A RawUpstream answering with ``respond`` behind a gateway with one public route to it, or
    with what ``snapshot(upstream_url)`` configures."""
    raw = RawUpstream(respond).start()
    data = (
        snapshot(raw.url)
        if snapshot is not None
        else {
            "upstreams": [{"name": "raw", "targets": [{"url": raw.url, "weight": 1}], **upstream}],
            "routes": [
                {
                    "name": "raw",
                    "path": "/",
                    "path_type": "prefix",
                    "upstream": "raw",
                    "auth": "public",
                    **(route or {}),
                }
            ],
        }
    )
    try:
        server = static_gateway(data, upstream_queue_timeout=10.0)
        with httpx.Client(base_url=server.url, timeout=20) as client:
            yield raw, client
    finally:
        raw.stop()


def bad_gateway(response: httpx.Response) -> bool:
    return response.status_code == 502 and response.json()["error"]["code"] == "upstream_unavailable"


# -- keep-alive --------------------------------------------------------------------------------
def test_it_sends_many_requests_on_one_connection(static_gateway: Any) -> None:
    with gateway_to(static_gateway, ok) as (raw, client):
        for i in range(20):
            response = client.get(f"/n/{i}")
            assert response.status_code == 200
            assert response.text == f"/n/{i}"
        response = client.post("/posted", content=b"x" * 1000)
        assert response.text == "/posted"
    assert len(raw.requests) == 21
    assert raw.connections == 1
    assert [r.number for r in raw.requests] == list(range(21))


def test_the_pool_is_bounded_per_target(static_gateway: Any) -> None:
    async def slow(request: RawRequest) -> bool:
        await asyncio.sleep(0.1)
        await request.send(answer())
        return True

    raw = RawUpstream(slow).start()
    data = {
        "upstreams": [{"name": "raw", "targets": [{"url": raw.url, "weight": 1}]}],
        "routes": [{"name": "raw", "path": "/", "path_type": "prefix", "upstream": "raw", "auth": "public"}],
    }
    try:
        server = static_gateway(data, upstream_pool_size=2, upstream_queue_timeout=10.0, connect_timeout=10.0)
        statuses: list[int] = []

        def call() -> None:
            statuses.append(httpx.get(server.url + "/", timeout=20).status_code)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        raw.stop()
    assert statuses == [200] * 8
    assert raw.connections <= 2
    assert len(raw.requests) == 8


def test_connection_close_is_honoured(static_gateway: Any) -> None:
    async def closing(request: RawRequest) -> bool:
        await request.send(answer(headers=b"Connection: close\r\n"))
        return True  # keeps the socket open: the gateway must not send another request on it

    with gateway_to(static_gateway, closing) as (raw, client):
        for path in ("/a", "/b", "/c"):
            assert client.get(path).text == "ok"
    assert raw.connections == 3
    assert all(r.number == 0 for r in raw.requests)


def test_an_idle_connection_the_upstream_closed_is_not_used(static_gateway: Any) -> None:
    async def short_keep_alive(request: RawRequest) -> bool:
        await request.send(answer())
        await asyncio.sleep(0.05)
        return False  # closes the idle connection, as uvicorn does after its keep-alive timeout

    with gateway_to(static_gateway, short_keep_alive, route={"retries": 0}) as (raw, client):
        for _ in range(3):
            assert client.get("/").status_code == 200
            wait_until(lambda: raw.finished == raw.connections, timeout=5)
    assert len(raw.requests) == 3  # no request was lost on a stale connection and sent again
    assert raw.connections == 3


# -- the keep-alive race: retried only when the request can be sent again ---------------------
def _closes_second_request(request: RawRequest) -> Awaitable[bool]:
    async def respond() -> bool:
        if request.connection == 0 and request.number == 1:
            return False  # closed without an answer, as an upstream whose keep-alive ran out
        await request.body()
        await request.send(answer(request.target.encode()))
        return True

    return respond()


def test_a_reused_connection_closed_before_the_answer_is_retried_on_a_new_one(static_gateway: Any) -> None:
    # retries 0: what saves the request is the fresh connection, not a retry on another target.
    with gateway_to(static_gateway, _closes_second_request, route={"retries": 0}) as (raw, client):
        assert client.get("/first").text == "/first"
        assert client.put("/second", content=b"small body").text == "/second"
    assert [(r.connection, r.number, r.target) for r in raw.requests] == [
        (0, 0, "/first"),
        (0, 1, "/second"),
        (1, 0, "/second"),
    ]


def test_a_post_on_a_reused_connection_closed_before_the_answer_is_not_sent_twice(static_gateway: Any) -> None:
    with gateway_to(static_gateway, _closes_second_request) as (raw, client):
        assert client.get("/first").status_code == 200
        assert bad_gateway(client.post("/order", content=b"{}"))
    assert [r.target for r in raw.requests] == ["/first", "/order"]


def test_a_streamed_upload_cut_after_part_was_sent_is_a_502_not_a_retry(static_gateway: Any) -> None:
    async def reads_a_little(request: RawRequest) -> bool:
        if request.number == 0:
            await request.send(answer())
            return True
        await request.reader.read(10)  # part of the upload, then the upstream goes away
        return False

    def body() -> Iterator[bytes]:
        yield from (b"a" * 1024, b"b" * 1024, b"c" * 1024)  # chunked: streamed, not buffered

    with gateway_to(static_gateway, reads_a_little) as (raw, client):
        assert client.get("/warm").status_code == 200
        assert bad_gateway(client.put("/upload", content=body()))
    assert [r.target for r in raw.requests] == ["/warm", "/upload"]


# -- framing: one response per request, or a 502 ----------------------------------------------
@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            id="transfer-encoding-and-content-length",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", id="two-lengths"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello", id="conflicting"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", id="length-list"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", id="bad-chunk"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", id="other-coding"),
        pytest.param(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", id="bare-lf"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok", id="obs-fold"),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", id="switching"),
        pytest.param(b"SSH-2.0-OpenSSH_9.2\r\n", id="not-http"),
    ],
)
def test_a_response_with_bad_framing_is_a_502_and_its_connection_is_dropped(static_gateway: Any, reply: bytes) -> None:
    async def broken(request: RawRequest) -> bool:
        if request.target == "/fine":
            await request.send(answer())
        else:
            await request.send(reply)
        return True

    with gateway_to(static_gateway, broken) as (raw, client):
        assert bad_gateway(client.get("/broken"))
        wait_until(lambda: raw.closed_by_peer >= 1, timeout=5)  # the gateway hung up, not reused
        assert client.get("/fine").status_code == 200
    assert [r.target for r in raw.requests] == ["/broken", "/fine"]  # not retried
    assert raw.connections == 2


def test_oversized_response_heads_are_a_502(static_gateway: Any) -> None:
    async def big_heads(request: RawRequest) -> bool:
        if request.target == "/many":
            await request.send(answer(headers=b"".join(b"X-H%d: v\r\n" % i for i in range(200))))
        elif request.target == "/huge":
            await request.send(answer(headers=b"X-Big: " + b"b" * (70 * 1024) + b"\r\n"))
        else:  # within the limits: a 16 KiB header
            await request.send(answer(headers=b"X-Big: " + b"b" * (16 * 1024) + b"\r\n"))
        return True

    with gateway_to(static_gateway, big_heads) as (_, client):
        assert bad_gateway(client.get("/many"))
        assert bad_gateway(client.get("/huge"))
        fine = client.get("/fine")
        assert fine.status_code == 200
        assert len(fine.headers["x-big"]) == 16 * 1024


def test_bytes_after_the_response_make_the_connection_unusable(static_gateway: Any) -> None:
    async def extra(request: RawRequest) -> bool:
        await request.send(answer(b"ok") + b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
        return True

    with gateway_to(static_gateway, extra) as (raw, client):
        assert client.get("/a").text == "ok"
        assert client.get("/b").text == "ok"  # never "forged"
    assert raw.connections == 2


# -- bodies and the statuses without one --------------------------------------------------------
def test_informational_responses_are_skipped(static_gateway: Any) -> None:
    async def early_hints(request: RawRequest) -> bool:
        await request.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        await request.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        await asyncio.sleep(0.05)
        await request.send(answer(b"final", headers=b"X-Final: yes\r\n"))
        return True

    with gateway_to(static_gateway, early_hints) as (raw, client):
        response = client.get("/")
        assert response.status_code == 200
        assert response.text == "final"
        assert response.headers["x-final"] == "yes"
        assert "link" not in response.headers
        assert client.get("/again").text == "final"
    assert raw.connections == 1


def test_head_204_and_304_have_no_body_and_keep_the_connection(static_gateway: Any) -> None:
    async def no_bodies(request: RawRequest) -> bool:
        if request.method == "HEAD":
            await request.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n")
        elif request.target == "/204":
            await request.send(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif request.target == "/304":
            await request.send(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 99\r\n\r\n')
        else:
            await request.send(answer(b"body"))
        return True

    with gateway_to(static_gateway, no_bodies) as (raw, client):
        head = client.head("/thing")
        assert head.status_code == 200
        assert head.headers["content-length"] == "1234"
        assert head.content == b""
        assert client.get("/thing").text == "body"  # the HEAD's length was not read as a body
        assert client.get("/204").status_code == 204
        not_modified = client.get("/304")
        assert not_modified.status_code == 304
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == '"v1"'
        assert client.get("/thing").text == "body"
    assert raw.connections == 1
    assert len(raw.requests) == 5


def test_chunked_responses_are_relayed_and_their_trailers_dropped(static_gateway: Any) -> None:
    async def chunked(request: RawRequest) -> bool:
        await request.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n")
        await request.send(b"5\r\nhello\r\n")
        await asyncio.sleep(0.02)
        await request.send(b"6;ext=1\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n")
        return True

    with gateway_to(static_gateway, chunked) as (raw, client):
        response = client.get("/")
        assert response.text == "hello world"
        assert "x-checksum" not in response.headers
        assert "trailer" not in response.headers
        assert client.get("/").text == "hello world"
    assert raw.connections == 1


def test_a_response_without_length_is_read_to_the_close(static_gateway: Any) -> None:
    async def until_close(request: RawRequest) -> bool:
        await request.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
        await asyncio.sleep(0.02)
        await request.send(b"the end")
        return False

    with gateway_to(static_gateway, until_close) as (raw, client):
        assert client.get("/a").text == "until the end"
        assert client.get("/b").text == "until the end"
    assert raw.connections == 2


def test_a_post_without_body_says_content_length_0(static_gateway: Any) -> None:
    with gateway_to(static_gateway, ok) as (raw, client):
        assert client.post("/empty").status_code == 200
        assert client.get("/plain").status_code == 200
    assert raw.requests[0].headers["content-length"] == "0"
    assert "content-length" not in raw.requests[1].headers
    assert "transfer-encoding" not in raw.requests[1].headers


def test_a_streamed_upload_goes_out_chunked(static_gateway: Any) -> None:
    seen: list[bytes] = []

    async def collect(request: RawRequest) -> bool:
        seen.append(await request.body())
        await request.send(answer())
        return True

    def body() -> Iterator[bytes]:
        yield from (b"one,", b"two,", b"three")

    with gateway_to(static_gateway, collect) as (raw, client):
        assert client.post("/up", content=body()).status_code == 200
        assert client.get("/next").status_code == 200  # the chunked body ended cleanly
    assert raw.requests[0].headers["transfer-encoding"] == "chunked"
    assert seen[0] == b"one,two,three"
    assert raw.connections == 1


# -- failures mid-way ---------------------------------------------------------------------------
def test_an_upstream_that_closes_mid_body_cuts_the_client_response(static_gateway: Any) -> None:
    async def short(request: RawRequest) -> bool:
        if request.target == "/fine":
            await request.send(answer())
            return True
        await request.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await asyncio.sleep(0.05)
        return False

    with gateway_to(static_gateway, short) as (_, client):
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/short")
        assert client.get("/fine").status_code == 200


def test_an_upstream_that_closes_before_answering_is_a_502(static_gateway: Any) -> None:
    async def hangs_up(request: RawRequest) -> bool:
        return False

    with gateway_to(static_gateway, hangs_up, route={"retries": 0}) as (raw, client):
        assert bad_gateway(client.get("/"))
    assert len(raw.requests) == 1


def test_a_slow_answer_is_a_504_and_a_stalled_body_is_cut(static_gateway: Any) -> None:
    async def slow(request: RawRequest) -> bool:
        if request.target == "/stall":
            await request.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await asyncio.sleep(30)
        return False

    with gateway_to(static_gateway, slow, read_timeout=0.3) as (raw, client):
        slow_head = client.get("/slow")
        assert slow_head.status_code == 504
        assert slow_head.json()["error"]["code"] == "upstream_timeout"
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/stall")
    assert [r.target for r in raw.requests] == ["/slow", "/stall"]  # read timeouts are not retried


def _two_routes(url: str) -> dict[str, Any]:
    """One target with a 5 s read timeout; "/quick" has a 0.3 s one of its own."""
    return {
        "upstreams": [{"name": "raw", "targets": [{"url": url, "weight": 1}], "read_timeout": 5.0}],
        "routes": [
            {
                "name": "quick",
                "path": "/quick",
                "path_type": "prefix",
                "upstream": "raw",
                "auth": "public",
                "timeouts": {"read": 0.3},
                "retries": 0,
            },
            {"name": "rest", "path": "/", "path_type": "prefix", "upstream": "raw", "auth": "public", "retries": 0},
        ],
    }


def test_a_shorter_read_timeout_holds_on_a_connection_an_earlier_exchange_timed_longer(
    static_gateway: Any,
) -> None:
    """A pooled connection keeps its read timer between exchanges (h1client.response_head):
    the 5 s timer of the first exchange must not stand in for the second's 0.3 s."""

    async def respond(request: RawRequest) -> bool:
        if request.target.endswith("/slow"):
            await asyncio.sleep(30)
            return False
        await request.send(answer())
        return True

    with gateway_to(static_gateway, respond, snapshot=_two_routes) as (raw, client):
        assert client.get("/fast").status_code == 200
        began = time.monotonic()
        slow = client.get("/quick/slow")
        waited = time.monotonic() - began
    assert slow.status_code == 504 and slow.json()["error"]["code"] == "upstream_timeout"
    assert waited < 3.0, waited  # the route's 0.3 s, not the 5 s timer left by "/fast"
    assert raw.connections == 1  # the same pooled connection carried both


def test_a_longer_read_timeout_outlives_the_timer_an_earlier_exchange_left(static_gateway: Any) -> None:
    """The 0.3 s timer left by a quick exchange fires during the next one, whose read timeout
    is 5 s: it re-arms for what is left of that one instead of failing it."""

    async def respond(request: RawRequest) -> bool:
        if request.target == "/takes-a-second":
            await asyncio.sleep(1.0)
        await request.send(answer(request.target.encode()))
        return True

    with gateway_to(static_gateway, respond, snapshot=_two_routes) as (raw, client):
        assert client.get("/quick/first").status_code == 200
        answered = client.get("/takes-a-second")
    assert answered.status_code == 200 and answered.text == "/takes-a-second"
    assert raw.connections == 1


def test_a_slow_client_slows_the_upstream_down(static_gateway: Any) -> None:
    written: list[int] = [0]

    async def firehose(request: RawRequest) -> bool:
        await request.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1024 * 1024 * 1024))
        block = b"x" * 65536
        while True:
            await request.send(block)
            written[0] += len(block)

    with gateway_to(static_gateway, firehose) as (_, client), client.stream("GET", "/") as response:
        assert response.status_code == 200
        next(response.iter_raw())
        time.sleep(1.0)  # the client reads nothing for a second
        # Socket buffers on both sides hold some megabytes; without backpressure the gateway
        # would have read hundreds of them into memory by now.
        assert written[0] < 96 * 1024 * 1024


# -- TLS ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_https_targets_are_reached_over_tls(tmp_path: Any, loop: str) -> None:
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from proxy.gateway.balancer import Target
    from proxy.gateway.h1client import ConnectFailed, encode_head
    from proxy.gateway.h1pool import UpstreamClient

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))

    async def main() -> tuple[list[bytes], int, str]:
        connections = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                writer.write(answer(b"secure"))
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        target = Target.parse(f"https://127.0.0.1:{port}")
        client = UpstreamClient(4, ssl_context=trusting)
        bodies = []
        for _ in range(3):
            conn = await client.pool(target).acquire(5.0)
            conn.begin(False, 5.0)
            conn.write(encode_head("GET", "/", [("Host", target.authority)], ""))
            await conn.response_head()
            bodies.append(await conn.read())
            conn.release()
        client.close()
        # The system's CAs do not know this certificate: refused, as aiohttp refused it.
        untrusting = UpstreamClient(4)
        refused = ""
        try:
            await untrusting.pool(target).acquire(5.0)
        except ConnectFailed as exc:
            refused = str(exc)
        untrusting.close()
        server.close()
        return bodies, connections, refused

    # uvloop too: the gateway runs on it in production, and its transports are its own classes.
    bodies, connections, refused = asyncio.run(main()) if loop == "asyncio" else uvloop.run(main())
    assert bodies == [b"secure"] * 3
    assert connections == 1
    assert "CERTIFICATE_VERIFY_FAILED" in refused


def test_an_answer_before_the_upload_ended_is_relayed(static_gateway: Any) -> None:
    async def refuses_early(request: RawRequest) -> bool:
        if request.target == "/next":
            await request.send(answer())
            return True
        # Like nginx's client_max_body_size: answer at once, read none of the body, then close
        # the way nginx does (a hang-up with unread data would be a reset, which may destroy the
        # answer in the gateway's kernel before it is read: then no gateway could relay it).
        await request.send(answer(b"too big", status=b"413 Payload Too Large", headers=b"Connection: close\r\n"))
        await request.linger()
        return False

    with gateway_to(static_gateway, refuses_early) as (raw, client):
        refused = client.post("/upload", content=b"u" * (2 * 1024 * 1024))  # declared, streamed
        assert refused.status_code == 413
        assert refused.text == "too big"
        assert client.get("/next").status_code == 200
    assert [r.target for r in raw.requests] == ["/upload", "/next"]


def test_expect_100_continue_is_answered_by_the_gateway_not_forwarded(static_gateway: Any) -> None:
    with gateway_to(static_gateway, ok) as (raw, client):
        port = int(str(client.base_url).rstrip("/").rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"PUT /continued HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            interim = sock.recv(65536)
            assert interim.startswith(b"HTTP/1.1 100 ")
            sock.sendall(b"hello")
            final = b""
            while b"/continued" not in final:
                chunk = sock.recv(65536)
                assert chunk
                final += chunk
        assert final.startswith(b"HTTP/1.1 200 ")
    assert "expect" not in raw.requests[0].headers
    assert raw.requests[0].headers["content-length"] == "5"


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/a", [("X-Note", "one\r\nX-Partner-ID: 7")]),  # a header smuggled in a value
        ("/a", [("X-Note", "one\nGET /admin HTTP/1.1")]),
        ("/a", [("X-Note", "one\rtwo")]),
        ("/a HTTP/1.1\r\nX: y", [("Host", "h")]),
        ("/a b", [("Host", "h")]),
        ("/a", [("X-Note", "€")]),  # not latin-1: not HTTP/1.1 header text
    ],
)
def test_a_request_head_that_would_split_is_refused(target: str, headers: list[tuple[str, str]]) -> None:
    from proxy.gateway.h1client import encode_head

    with pytest.raises(ValueError):
        encode_head("GET", target, headers, "")
    assert encode_head("GET", "/a", [("Host", "h"), ("X-Note", "fine")], "Content-Length: 0\r\n") == (
        b"GET /a HTTP/1.1\r\nHost: h\r\nX-Note: fine\r\nContent-Length: 0\r\n\r\n"
    )


def test_an_upstream_that_takes_none_of_the_upload_is_a_504(static_gateway: Any) -> None:
    async def never_reads(request: RawRequest) -> bool:
        await asyncio.sleep(30)  # the head was read; the body is left in the socket
        return False

    def body() -> Iterator[bytes]:
        for _ in range(256):
            yield b"s" * 65536  # 16 MiB, chunked: more than the sockets between can hold

    route = {"max_body_bytes": 64 * 1024 * 1024}
    with gateway_to(static_gateway, never_reads, route=route, read_timeout=0.5) as (raw, client):
        response = client.put("/stuck", content=body())
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "upstream_timeout"
    assert len(raw.requests) == 1  # a streamed body is not sent again


def test_a_full_pool_hands_returned_connections_to_waiters_and_times_out_the_rest() -> None:
    from proxy.gateway.balancer import Target
    from proxy.gateway.h1client import ConnectFailed, ConnectTimeout
    from proxy.gateway.h1pool import UpstreamClient

    async def main() -> None:
        accepted = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            with contextlib.suppress(ConnectionError):
                await reader.read()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = UpstreamClient(1)
        pool = client.pool(Target.parse(f"http://127.0.0.1:{port}"))
        first = await pool.acquire(1.0)
        with pytest.raises(ConnectTimeout):  # the only connection is busy: a 504, in time
            await pool.acquire(0.1)
        waiting = asyncio.ensure_future(pool.acquire(5.0))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        first.begin(False, 1.0)
        first.complete = first.keep_alive = True  # as after a response that allows reuse
        first.release()
        assert await waiting is first  # handed over, not a second connection
        first.begin(False, 1.0)
        first.release()  # incomplete: closed, and its place freed
        replacement = await pool.acquire(1.0)
        assert replacement is not first
        replacement.release()
        assert pool.opened <= 1
        assert accepted == 2
        client.close()
        server.close()
        refused = UpstreamClient(1).pool(Target.parse(f"http://127.0.0.1:{port}"))
        with pytest.raises(ConnectFailed):  # nobody listens any more
            await refused.acquire(1.0)
        assert refused.opened == 0

    asyncio.run(main())


def test_a_target_removed_from_the_configuration_loses_its_pool_and_idle_sockets() -> None:
    from proxy.gateway.balancer import Target
    from proxy.gateway.h1pool import UpstreamClient

    async def main() -> None:
        closed: list[int] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                await reader.read()  # until the gateway closes its end
            closed.append(1)
            writer.close()

        servers = [await asyncio.start_server(handle, "127.0.0.1", 0) for _ in range(2)]
        kept, removed = (Target.parse(f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}") for s in servers)
        client = UpstreamClient(4)
        for target in (kept, removed):
            conn = await client.pool(target).acquire(1.0)
            conn.begin(False, 1.0)
            conn.complete = conn.keep_alive = True
            conn.release()  # idle in its pool
        client.retain([kept])  # the new snapshot has only `kept`
        assert [key[2] for key in client.pools] == [kept.port]
        for _ in range(100):
            if closed:
                break
            await asyncio.sleep(0.01)
        assert closed == [1]  # the removed target's idle socket was closed; the kept one is open
        assert client.pools[("http", kept.host, kept.port)].idle
        client.close()
        for server in servers:
            server.close()

    asyncio.run(main())
