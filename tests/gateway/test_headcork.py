"""The edge protocol writes a response's head together with its first body bytes (headcork.py),
and what it holds back never waits for more than a loop turn, never goes out of order and is
never left behind: a relayed response is one write; a head whose body is not ready yet (a
stream) still leaves at once; HEAD, ``Connection: close``, pipelined requests, ``Expect:
100-continue`` and a refusal after a held head all keep their bytes and their order.

The protocol runs on a recording transport (each write or writelines call is one entry), on
uvloop (production) and asyncio; the last tests serve real sockets with uvicorn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, cast

import pytest
import uvloop
from uvicorn.config import Config
from uvicorn.server import Server, ServerState

from proxy.gateway.edge import EdgeProtocol
from tests.servers import free_port

pytestmark = pytest.mark.timeout(30)

LOOPS = pytest.mark.parametrize("loop_kind", ["uvloop", "asyncio"])
App = Callable[[dict[str, Any], Any, Any], Coroutine[Any, Any, None]]


def run(loop_kind: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return uvloop.run(main()) if loop_kind == "uvloop" else asyncio.run(main())


class Recorder:
    """A transport that keeps each write operation apart, as the socket would see them."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.events: list[str] = []

    @property
    def output(self) -> bytes:
        return b"".join(self.writes)

    def write(self, data: bytes) -> None:
        # Not an assertion: a write from a loop callback would only be logged.
        self.events.append("write after close" if self.closed else "write")
        self.writes.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        self.events.append("close")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def edge(app: App) -> tuple[EdgeProtocol, Recorder]:
    config = Config(app=app, lifespan="off", access_log=False, server_header=False, date_header=False)
    config.load()
    protocol = EdgeProtocol(config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop())
    transport = Recorder()
    protocol.connection_made(cast(asyncio.Transport, transport))
    return protocol, transport


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def answer(body: bytes, *, status: int = 200, extra: list[tuple[bytes, bytes]] | None = None) -> App:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


GET = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"


@LOOPS
def test_a_response_is_one_write_head_and_body(loop_kind: str) -> None:
    async def main() -> list[bytes]:
        protocol, transport = edge(answer(b"hello"))
        protocol.data_received(GET)
        await turns()
        return transport.writes

    writes = run(loop_kind, main)
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\nhello")


@LOOPS
def test_keep_alive_responses_each_leave_whole_and_in_order(loop_kind: str) -> None:
    async def main() -> list[bytes]:
        protocol, transport = edge(answer(b"again"))
        for _ in range(3):
            protocol.data_received(GET)
            await turns()
        return transport.writes

    writes = run(loop_kind, main)
    assert len(writes) == 3 and all(w.endswith(b"\r\n\r\nagain") for w in writes)


@LOOPS
def test_a_head_without_a_body_is_written_when_the_response_completes(loop_kind: str) -> None:
    """HEAD: uvicorn writes no body at all, so nothing would take the held head along."""

    async def main() -> tuple[bytes, list[bytes]]:
        protocol, transport = edge(answer(b"not sent"))
        protocol.data_received(b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n")
        await turns()
        head = transport.output
        protocol.data_received(GET)
        await turns()
        return head, transport.writes

    head, writes = run(loop_kind, main)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"content-length: 8\r\n\r\n")
    assert len(writes) == 2 and writes[1].endswith(b"not sent")


@LOOPS
def test_a_streamed_head_leaves_before_its_first_chunk_exists(loop_kind: str) -> None:
    """Server-sent events: the client must see the head though the body waits on an event."""

    async def main() -> tuple[bytes, bytes, list[bytes]]:
        go = asyncio.Event()

        async def stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            await go.wait()
            await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
            await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})

        protocol, transport = edge(stream)
        protocol.data_received(GET)
        await turns()
        before = transport.output
        go.set()
        await turns()
        return before, transport.output, transport.writes

    before, after, writes = run(loop_kind, main)
    assert before.startswith(b"HTTP/1.1 200 OK\r\n") and before.endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert after == before + b"9\r\ndata: 1\n\n\r\n" + b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"
    assert len(writes) == 3  # the head alone, then each chunk as it came


@LOOPS
def test_a_graceful_stop_right_after_a_bodiless_response_keeps_its_head(loop_kind: str) -> None:
    """uvicorn's shutdown closes a connection whose response is complete at once: the held head
    must have left by then."""

    async def main() -> Recorder:
        async def then_stop(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await answer(b"")(scope, receive, send)
            protocol.shutdown()  # what the server does to each connection on SIGTERM

        protocol, transport = edge(then_stop)
        protocol.data_received(b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n")
        await turns()
        return transport

    transport = run(loop_kind, main)
    assert transport.output.startswith(b"HTTP/1.1 200 OK\r\n") and transport.output.endswith(b"\r\n\r\n")
    assert transport.events == ["write", "close"]


@LOOPS
def test_a_head_held_when_the_client_went_away_is_dropped(loop_kind: str) -> None:
    async def main() -> Recorder:
        async def client_leaves(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            protocol.connection_lost(None)  # the client hung up while the head was held
            await send({"type": "http.response.body", "body": b"ok"})  # uvicorn drops it

        protocol, transport = edge(client_leaves)
        protocol.data_received(GET)
        await turns()
        return transport

    transport = run(loop_kind, main)
    assert transport.events == ["close"] and transport.writes == []


@LOOPS
def test_connection_close_writes_the_held_head_before_closing(loop_kind: str) -> None:
    async def main() -> Recorder:
        protocol, transport = edge(answer(b"", status=204))
        protocol.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await turns()
        return transport

    transport = run(loop_kind, main)
    assert transport.output.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert transport.output.endswith(b"connection: close\r\n\r\n")
    assert transport.events == ["write", "close"]


@LOOPS
def test_pipelined_requests_get_their_responses_in_order(loop_kind: str) -> None:
    async def main() -> bytes:
        async def echo_path(scope: dict[str, Any], receive: Any, send: Any) -> None:
            body = scope["path"].encode()
            headers = [(b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await asyncio.sleep(0)  # the body a turn after its head: the held head waits for it
            await send({"type": "http.response.body", "body": body})

        protocol, transport = edge(echo_path)
        protocol.data_received(
            b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /two HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /three HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        await turns(20)
        return transport.output

    output = run(loop_kind, main)
    responses = output.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(responses) == 3
    assert responses[0].endswith(b"\r\n\r\n/one")
    assert responses[1].endswith(b"content-length: 4\r\n\r\n")  # HEAD: no body
    assert responses[2].endswith(b"\r\n\r\n/three")


@LOOPS
def test_100_continue_goes_out_before_the_body_is_awaited(loop_kind: str) -> None:
    async def main() -> tuple[bytes, bytes]:
        async def upload(scope: dict[str, Any], receive: Any, send: Any) -> None:
            message = await receive()
            body = message["body"]
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
            )
            await send({"type": "http.response.body", "body": body})

        protocol, transport = edge(upload)
        protocol.data_received(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        await turns()
        interim = transport.output  # the client sends its body only once it has this
        protocol.data_received(b"ping")
        await turns()
        return interim, transport.output

    interim, output = run(loop_kind, main)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert output.startswith(interim + b"HTTP/1.1 200 OK\r\n") and output.endswith(b"\r\n\r\nping")


@LOOPS
def test_a_refusal_after_a_held_head_keeps_the_head_first(loop_kind: str) -> None:
    """Bytes that are not HTTP arrive while a response's head is held: the refusal (400, close)
    comes after that head, not before it or inside it."""

    async def main() -> Recorder:
        async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            protocol.data_received(b"\x00\x01 not http\r\n\r\n")  # in the same turn as the head
            await send({"type": "http.response.body", "body": b"ok"})

        protocol, transport = edge(slow)
        protocol.data_received(GET)
        await turns()
        return transport

    transport = run(loop_kind, main)
    first, second = transport.output.split(b"HTTP/1.1 400 Bad Request\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"content-length: 2\r\n\r\n")
    assert b"bad_request" in second and transport.closed


# -- real sockets ---------------------------------------------------------------------------------
@LOOPS
def test_over_a_socket_every_response_arrives_whole(loop_kind: str) -> None:
    """uvicorn with the edge protocol on a port: the transports' own writelines (uvloop's is a
    writev) carry the head and body; a stream's head arrives before its body is produced."""

    async def main() -> tuple[bytes, bytes, bytes]:
        chunk_sent = asyncio.Event()
        release = asyncio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            if scope["path"] == "/stream":
                await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
                await release.wait()
                await send({"type": "http.response.body", "body": b"late"})
                chunk_sent.set()
                return
            await answer(b"x" * 100_000)(scope, receive, send)  # more than one socket buffer's worth

        port = free_port()
        config = Config(app=app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", http=EdgeProtocol)
        server = Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(GET)
            big = await read_response(reader, 100_000)
            writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # before "late" exists
            release.set()
            late = await asyncio.wait_for(reader.readexactly(4), 5)
            await chunk_sent.wait()
            writer.close()
            return big, head, late
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)

    big, head, late = run(loop_kind, main)
    assert big.startswith(b"HTTP/1.1 200 OK\r\n") and big.endswith(b"x" * 100_000)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and late == b"late"


async def read_response(reader: asyncio.StreamReader, length: int) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return head + await asyncio.wait_for(reader.readexactly(length), 5)
