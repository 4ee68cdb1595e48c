"""Small upstreams for behaviours the demo API does not have."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from typing import Any, Self

from aiohttp import WSMsgType, web

from tests.servers import ThreadServer, free_port


def named_upstream(name: str) -> ThreadServer:
    """Answers every request with its name; sets a cookie on /set-cookie and echoes cookies."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        cookies = [v.decode() for k, v in scope["headers"] if k == b"cookie"]
        headers = [(b"content-type", b"application/json")]
        if scope["path"] == "/set-cookie":
            headers.append((b"set-cookie", b"session=secret-of-" + name.encode() + b"; Path=/"))
        body = json.dumps({"name": name, "path": scope["path"], "cookies": cookies}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return ThreadServer(app)


class ResettingServer:
    """Accepts a connection, reads a little, and closes it: an upstream that resets."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn.recv(1024)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            finally:
                conn.close()

    def start(self) -> ResettingServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


class AiohttpUpstream:
    """An aiohttp application on a 127.0.0.1 port, served from a thread of the test process (so
    the test can read what it recorded). Subclasses add their routes in ``routes``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def _start(self) -> None:
        app = web.Application()
        self.routes(app)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def start(self) -> Self:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WebSocketUpstream(AiohttpUpstream):
    """An aiohttp WebSocket upstream in a thread: echoes text and binary; ``close:CODE:REASON``
    makes it close with that code; ``flood:N`` sends N messages. It remembers how clients
    closed (GET /closes) and offers the subprotocols v1 and v2."""

    def __init__(self) -> None:
        super().__init__()
        self.closes: list[tuple[int, str]] = []

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("v1", "v2"), max_msg_size=64 * 1024 * 1024)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if msg.data.startswith("close:"):
                    _, code, reason = msg.data.split(":", 2)
                    await ws.close(code=int(code), message=reason.encode())
                    break
                if msg.data.startswith("flood:"):
                    for i in range(int(msg.data[6:])):
                        await ws.send_str(f"m{i}")
                    continue
                if msg.data == "whoami":
                    await ws.send_str(
                        json.dumps(
                            {"headers": dict(request.headers), "query": request.query_string, "path": request.path}
                        )
                    )
                    continue
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        if ws.close_code is not None:
            self.closes.append((ws.close_code, ""))
        return ws

    async def _closes(self, request: web.Request) -> web.Response:
        return web.json_response(self.closes)

    async def _refuse(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "no"}, status=403)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/ws/{tail:.*}", self._ws)
        app.router.add_get("/closes", self._closes)
        app.router.add_get("/refuse", self._refuse)


class SilentServer(ResettingServer):
    """Accepts connections and never answers: an upstream that hangs."""

    def _serve(self) -> None:
        held = []
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            held.append(conn)  # kept open, never read, never answered
        for conn in held:
            conn.close()


class RecordingUpstream(AiohttpUpstream):
    """Records every request it gets (HTTP or WebSocket handshake): raw target and headers;
    answers HTTP with 200 and accepts (then closes) WebSockets."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    async def _any(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            {
                "websocket": request.headers.get("Upgrade", "").lower() == "websocket",
                "target": request.raw_path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
            }
        )
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.close()
            return ws
        return web.json_response({"ok": True})

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._any)


class RawRequest:
    """One request as a ``RawUpstream`` read it, and the means to answer it byte by byte."""

    def __init__(
        self, connection: int, number: int, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connection = connection  # which connection of the upstream (0, 1, ...)
        self.number = number  # which request on that connection (0, 1, ...)
        self.head = head
        self.reader = reader
        self.writer = writer
        first, *lines = head.decode("latin-1").split("\r\n")
        self.method, self.target, _ = first.split(" ", 2)
        self.headers: dict[str, str] = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()

    async def body(self) -> bytes:
        """The request body, by its Content-Length or chunked framing."""
        if self.headers.get("transfer-encoding") == "chunked":
            data = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    return data
                data += chunk[:-2]
        return await self.reader.readexactly(int(self.headers.get("content-length", "0")))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def linger(self, seconds: float = 5.0) -> None:
        """Close the way nginx does after answering before the body was read (lingering close):
        send FIN, then read and discard what the client still sends until it closes or
        ``seconds`` pass. Closing with unread data instead sends a reset, and a reset that
        reaches the client before it has read the answer makes its kernel drop the answer."""
        if self.writer.can_write_eof():
            self.writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(seconds):
                while await self.reader.read(65536):
                    pass


class RawUpstream:
    """An HTTP/1.1 upstream that answers with exactly the bytes a test scripts: the framing
    mistakes, early closes and stalls no well-behaved server library produces.

    ``respond(request)`` reads what it needs of the body (``await request.body()``), writes the
    answer (``await request.send(...)``) and returns whether the connection stays open. The
    upstream records every request (``requests``) and counts connections (``connections``).
    """

    def __init__(self, respond: Any) -> None:
        self.respond = respond
        self.port = free_port()
        self.requests: list[RawRequest] = []
        self.connections = 0
        self.closed_by_peer = 0  # connections the gateway closed
        self.finished = 0  # connections closed, by either side
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = self.connections
        self.connections += 1
        number = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_peer += 1
                    return
                request = RawRequest(connection, number, head, reader, writer)
                self.requests.append(request)
                number += 1
                if not await self.respond(request):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return  # stop(): the test is over
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.finished += 1

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def start(self) -> RawUpstream:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
