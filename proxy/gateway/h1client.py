"""The gateway's HTTP/1.1 client connection: an asyncio protocol with httptools' response parser.

Why not aiohttp's client: on one pinned core, a passthrough on this kind of client served ≈25k
requests/s against aiohttp's ≈10k (docs/benchmarks.md, "Why the gateway has its own HTTP/1.1
client"); aiohttp cost ≈60 µs per request more than the protocol and the parser need. aiohttp
stays for WebSockets (websocket.py), JWKS fetches and the active health checks.

One ``H1Connection`` carries one exchange at a time (no pipelining); the pool (h1pool.py) hands
it out and takes it back. What it guarantees:

- **Strict framing** (llhttp, not lenient): a response with both Transfer-Encoding and
  Content-Length, two Content-Lengths, a bad chunk size, a bare LF, obsolete line folding, a
  transfer coding other than ``chunked`` or a head over ``MAX_HEAD_BYTES`` / ``MAX_HEADERS`` is
  a ``BadResponse`` (502) and the connection is closed, never reused: what the gateway relays is
  exactly one response per request.
- **No body** for HEAD, 1xx, 204 and 304; informational responses (100, 103) are skipped, 101 is
  refused (the gateway never asks for an upgrade here). Trailers are dropped.
- **Reuse** only after a complete response that allows it (``Connection: close``, HTTP/1.0, a
  body delimited by the close, bytes beyond the response, an unfinished request body: closed).
- **Backpressure both ways**: reading pauses when more than ``_HIGH_WATER`` bytes of body wait
  for the client, and a request body waits for the transport's write buffer to drain.
- **Read timeout**: the longest wait for the next bytes of the response while the gateway waits
  for them (not while the client is slow to take what was read). One timer per exchange, moved
  only when it fires early, instead of one reschedule per read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Collection
from typing import TYPE_CHECKING, cast

import httptools

if TYPE_CHECKING:
    from proxy.gateway.h1pool import TargetPool

# Response head limits: Envoy's max_response_headers_kb is 60; aiohttp allowed 128 fields.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 128
# Body bytes read but not yet taken by the relay: above this, the socket is not read.
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
# Methods that carry a body by definition: without one they say so (aiohttp did the same).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_NO_BODY_STATUS = frozenset({204, 304})


class UpstreamError(Exception):
    """The exchange with the upstream failed; the connection is not reused."""


class ConnectFailed(UpstreamError):
    """No connection: refused, unreachable, name unknown, TLS handshake failed. Nothing was sent."""


class ConnectTimeout(UpstreamError, TimeoutError):
    """No connection (or no free pooled one) within the connect timeout. Nothing was sent."""


class Disconnected(UpstreamError):
    """The upstream closed or reset the connection before its response was complete."""


class ReadTimeout(UpstreamError, TimeoutError):
    """The upstream sent nothing for longer than the read timeout."""


class BadResponse(UpstreamError):
    """The upstream's response breaks HTTP/1.1 framing or the head limits."""


def encode_head(method: str, target: str, headers: Collection[tuple[str, str]], framing: str) -> bytes:
    """The request line and header block. ``framing`` is the line the body needs (or "").

    Header names and values come from httptools-parsed requests and validated transforms; a CR or
    LF here would split the request in two (request smuggling), so the block is checked whole.
    """
    block = "\r\n".join(map(": ".join, headers)) + "\r\n" if headers else ""
    text = f"{method} {target} HTTP/1.1\r\n{block}{framing}\r\n"
    lines = len(headers) + (3 if framing else 2)
    if text.count("\n") != lines or text.count("\r") != lines or " " in target:
        raise ValueError("a header or the target contains a line break or a space")
    return text.encode("latin-1")  # UnicodeEncodeError is a ValueError too


def framing_for(method: str, has_length: bool, body: bytes | AsyncIterable[bytes] | None) -> str:
    """The framing header the body needs beside the headers admission built (pipeline.py copies
    the client's Content-Length when it declared one)."""
    if body is None:
        return "" if has_length or method not in _BODY_METHODS else "Content-Length: 0\r\n"
    if isinstance(body, bytes):
        return "" if has_length else f"Content-Length: {len(body)}\r\n"
    return "" if has_length else "Transfer-Encoding: chunked\r\n"


class H1Connection(asyncio.Protocol):
    """One keep-alive connection to one target, and the exchange in progress on it."""

    def __init__(self, pool: TargetPool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False  # lost, or the upstream said EOF: it carries nothing more
        self.reused = False  # a response completed on it before: a failure may mean it went stale
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._parser_clean = True
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # The exchange in progress (begin() resets these).
        self.active = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []  # names lower-cased
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self._head_request = False
        self._informational = False
        self._until_eof = False
        self._head_bytes = 0  # received while the head is incomplete
        self._header_bytes = 0  # in the header fields parsed
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._read_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._read_timeout = 0.0
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.active or self.complete:
            # Bytes nobody asked for (an idle connection, or after a complete response): the
            # stream is out of step. Not one of them may be taken for the next response.
            self.keep_alive = False
            self.close()
            return
        self._last_read = self.loop.time()
        if not self.head_done:
            self._head_bytes += len(data)  # a head that never ends is refused below
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            # A callback's own refusal comes back as the parser error's context.
            cause = exc.__context__
            self._fail(cause if isinstance(cause, UpstreamError) else BadResponse(f"malformed response: {exc}"))
        if not self.head_done and self._head_bytes > MAX_HEAD_BYTES and self._error is None:
            self._fail(BadResponse("the response head is too large"))

    def eof_received(self) -> bool:
        self.closed = True
        if self.active and not self.complete and self._error is None:
            if self.head_done and self._until_eof:
                self.complete = True  # a body without length ends with the connection
                self.keep_alive = False
                self._wake()
            else:
                self._fail(Disconnected("the upstream closed the connection"))
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.active and not self.complete and self._error is None:
            self._fail(Disconnected(f"the upstream connection was lost: {exc or 'closed'}"))
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)  # the writer finds the connection closed
        self._cancel_timer()
        if self.transport is not None:  # counted by the pool once it was made (h1pool._open)
            self.pool.lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:
            raise BadResponse("bytes beyond the response")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            return  # a trailer: dropped (nothing downstream asked for them)
        if len(self.headers) >= MAX_HEADERS:
            raise BadResponse("the response has too many headers")
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEAD_BYTES:
            raise BadResponse("the response head is too large")
        self.headers.append((name.lower(), value))  # lower-cased once, as ASGI sends them

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            if status == 101 or status < 100:
                raise BadResponse(f"status {status} is not an answer to this request")
            self._informational = True  # 100 Continue, 103 Early Hints: the final one follows
            self.headers = []
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        has_length = False
        for name, value in self.headers:
            if name == b"transfer-encoding":
                if value.strip().lower() != b"chunked":
                    # Decoded here, relayed undeclared: only chunked can be taken off safely.
                    raise BadResponse("unsupported transfer coding")
                has_length = True
            elif name == b"content-length":
                has_length = True
        self.head_done = True
        if self._head_request or status in _NO_BODY_STATUS:
            self.complete = True
            if self._head_request:
                # llhttp does not know the request was HEAD and would wait for the announced
                # body: the next exchange gets a fresh parser.
                self._parser_clean = False
        elif not has_length:
            self._until_eof = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            raise BadResponse("a body where none may be")
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if not self._head_request:
            self.complete = True
            self._wake()

    # -- the exchange ----------------------------------------------------------------------------
    def begin(self, head_request: bool, read_timeout: float) -> None:
        if not self._parser_clean:
            self._parser = httptools.HttpResponseParser(self)
            self._parser_clean = True
        self.active = True
        self.status = 0
        self.headers = []
        self.head_done = self.complete = self.keep_alive = False
        self._head_request = head_request
        self._informational = self._until_eof = False
        self._head_bytes = self._header_bytes = self._buffered = 0
        self._chunks = []
        self._error = None
        self._read_timeout = read_timeout

    def write(self, data: bytes) -> None:
        if self.closed or self._error is not None or self.transport is None:
            raise self._error or Disconnected("the upstream closed the connection")
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait for the write buffer to empty. An upstream that takes none of the body for the
        read timeout is as unresponsive as one that sends nothing (aiohttp's read timer ran
        while it wrote, too)."""
        if self._write_paused and not self.closed:
            self._drain_waiter = self.loop.create_future()
            try:
                async with asyncio.timeout(self._read_timeout or None):
                    await self._drain_waiter
            except TimeoutError:
                self._fail(ReadTimeout("the upstream took none of the request body in time"))
                self.close()
                raise ReadTimeout("the upstream took none of the request body in time") from None
            finally:
                self._drain_waiter = None

    async def send_body(self, body: AsyncIterable[bytes], chunked: bool) -> bool:
        """Stream a request body. False when the upstream answered (or failed) before it was all
        sent: the response is read, and the connection closed after it (its request is unfinished)."""
        try:
            async for chunk in body:
                if self.head_done or self._error is not None:
                    self.keep_alive = False
                    return False
                if chunked:
                    if chunk:
                        self.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    self.write(chunk)
                if self._write_paused:
                    await self.drain()
            if chunked:
                self.write(b"0\r\n\r\n")
        except Disconnected:
            if not self.head_done:
                raise
            # It answered (a 413, say) and closed without reading the rest: that answer stands.
            self.keep_alive = False
            return False
        return True

    async def response_head(self) -> None:
        """Wait for the final response head (the read timeout applies)."""
        if self._read_timeout > 0:
            self._last_read = now = self.loop.time()
            deadline = now + self._read_timeout
            # A timer left from an earlier exchange on this connection is kept when it fires no
            # later than this one's deadline: it re-arms itself for what is left (_on_timer). Arming
            # and cancelling a timer for every exchange cost ≈ 1.4 µs (bench.pathcost).
            timer = self._timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer = self.loop.call_at(deadline, self._on_timer)
        while not self.head_done:
            if self._error is not None:
                raise self._error
            await self._wait()
        if self._error is not None and not self.complete:
            raise self._error

    def read_nowait(self) -> bytes | None:
        """What ``read`` would return without waiting, or None when it would wait (or raise).
        Most answers arrive whole with their head: then the relay needs no coroutine to read."""
        if self._chunks:
            chunks, self._chunks = self._chunks, []
            self._buffered = 0
            if self._read_paused and self.transport is not None:
                self._read_paused = False
                self.transport.resume_reading()
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self.complete:
            return b""  # whatever came after it (refused) does not spoil a complete response
        return None

    async def read(self) -> bytes:
        """The body bytes received since the last call; b"" once the body is complete."""
        while True:
            chunk = self.read_nowait()
            if chunk is not None:
                return chunk
            if self._error is not None:
                raise self._error
            await self._wait()

    def fail(self, exc: BaseException) -> None:
        """End the exchange from outside (the client left, the process drains): the pending
        read raises ``exc`` at once and the connection is closed, not pooled."""
        self._fail(exc)

    def release(self) -> None:
        """Back to the pool when the response is complete and the connection may carry another
        one; closed otherwise. A pooled connection's read timer is left to run out: it does
        nothing while the connection is idle, and the next exchange may reuse it."""
        self.active = False
        reusable = self.complete and self.keep_alive and not self.closed and self._error is None
        self._chunks = []
        if reusable:
            self.reused = True
            self.pool.put(self)
        else:
            self._cancel_timer()
            self.close()

    # -- internals -----------------------------------------------------------------------------
    def _wait(self) -> asyncio.Future[None]:
        self._waiter = self.loop.create_future()
        return self._waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self.keep_alive = False
        self._wake()

    def _on_timer(self) -> None:
        self._timer = None
        if not self.active or self.complete or self._error is not None or self._read_timeout <= 0:
            return  # idle, done, or an exchange without a read timeout: the timer lapses
        now = self.loop.time()
        if self._waiter is None or self._read_paused:
            # The relay is busy with the client, not waiting for the upstream: not its fault.
            self._last_read = now
        deadline = self._last_read + self._read_timeout
        if now >= deadline:
            self._fail(ReadTimeout("the upstream sent nothing in time"))
            self.close()
        else:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Close at once; the pool frees the place when the loop reports the loss."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()
