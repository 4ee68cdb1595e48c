"""The gateway's HTTP/1.1 server protocol: uvicorn's httptools protocol with the framing limits
of an internet-facing proxy, enforced while bytes arrive, before anything is assembled.

uvicorn's httptools protocol has no limit on the request line, the header block or the number
of headers, no deadline for headers to arrive and no cap on connections: one 200 MiB header took
a worker from 115 MB to 779 MB, and silent connections stayed open for ever. This subclass counts
bytes in ``data_received`` (while headers are incomplete) and in the parser's callbacks, and
answers like nginx and Envoy do:

| limit (env variable)                    | default | answer |
|-----------------------------------------|---------|--------|
| request target (``GATEWAY_MAX_URL_BYTES``)      | 8 KiB   | 414, close |
| header block (``GATEWAY_MAX_HEADER_BYTES``)     | 32 KiB  | 431, close (nginx: 4 × 8k) |
| header count (``GATEWAY_MAX_HEADERS``)          | 100     | 431, close (Envoy: 100) |
| headers complete within (``GATEWAY_HEADER_TIMEOUT``) | 10 s | 408, close (slowloris) |
| connections per process (``GATEWAY_MAX_CONNECTIONS``) | 10,000 | 503 at once to new ones |
| WebSocket message (``GATEWAY_WS_MAX_MESSAGE_BYTES``) | 1 MiB | close 1009, while assembling/inflating |

Idle keep-alive connections are closed by uvicorn's ``--timeout-keep-alive``; request bodies have
their own idle and total deadlines where they are read (body.py).

Each response's head leaves with its first body bytes, in one write (headcork.py).

Use it with ``uvicorn --http proxy.gateway.edge:EdgeProtocol`` (the Dockerfile and
``runplatform`` do). It mirrors uvicorn's own ``data_received`` (a few lines) because that one
turns every parser error into a 400.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from proxy.gateway.headcork import HeadCork

log = logging.getLogger("apigw.edge")


def _positive(raw: str | None, name: str, default: float) -> float:
    """The data plane reads its edge limits itself: uvicorn builds the protocol, not Django."""
    raw = (raw or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name}: {raw!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise SystemExit(f"{name}: must be a positive number, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_url_bytes: int
    max_header_bytes: int
    max_headers: int
    header_timeout: float
    max_connections: int
    ws_max_message_bytes: int

    @classmethod
    def from_env(cls) -> EdgeLimits:
        return cls(
            max_url_bytes=int(_positive(os.environ.get("GATEWAY_MAX_URL_BYTES"), "GATEWAY_MAX_URL_BYTES", 8 * 1024)),
            max_header_bytes=int(
                _positive(os.environ.get("GATEWAY_MAX_HEADER_BYTES"), "GATEWAY_MAX_HEADER_BYTES", 32 * 1024)
            ),
            max_headers=int(_positive(os.environ.get("GATEWAY_MAX_HEADERS"), "GATEWAY_MAX_HEADERS", 100)),
            header_timeout=_positive(os.environ.get("GATEWAY_HEADER_TIMEOUT"), "GATEWAY_HEADER_TIMEOUT", 10.0),
            max_connections=int(
                _positive(os.environ.get("GATEWAY_MAX_CONNECTIONS"), "GATEWAY_MAX_CONNECTIONS", 10_000)
            ),
            ws_max_message_bytes=int(
                _positive(os.environ.get("GATEWAY_WS_MAX_MESSAGE_BYTES"), "GATEWAY_WS_MAX_MESSAGE_BYTES", 1024 * 1024)
            ),
        )


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class EdgeProtocol(HttpToolsProtocol):
    """Late headers are found by one sweep per server (``_sweep``), not by a timer armed and
    cancelled for every request, which costs more than the rest of this class per request."""

    limits = EdgeLimits.from_env()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The WebSocket protocol this one upgrades to assembles (and inflates) each message up to
        # the server's ws_max_size (uvicorn: 16 MiB): capped here, whatever the command line said.
        if self.config.ws_max_size > self.limits.ws_max_message_bytes:
            self.config.ws_max_size = self.limits.ws_max_message_bytes
        self._head_open = True  # between a request's first byte and its complete headers
        self._head_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        self._head_started = 0.0  # loop time the awaited headers' first byte (or the connection) came
        self._refusal: _Refused | None = None

    # -- connections ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._cork = HeadCork(transport, self.loop)
        if len(self.connections) > self.limits.max_connections:
            # New connections get a fast answer; the ones being served are not disturbed.
            self._refuse(_Refused(503, "too_many_connections", "The gateway is at its connection limit."))
            return
        self._head_started = self.loop.time()  # a connection that never sends a byte must end too
        state: Any = self.server_state  # one sweep per server (and so per event loop)
        sweeper = getattr(state, "apigw_head_sweeper", None)
        if sweeper is None or sweeper.done():
            state.apigw_head_sweeper = self.loop.create_task(_sweep(state.connections, self.limits))

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_open = False
        super().connection_lost(exc)

    # -- bytes ---------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            refusal = self._refusal or _Refused(400, "bad_request", "The request is not valid HTTP/1.1.")
            self._refuse(refusal)
            return
        if self._head_open:
            # The parser keeps an unfinished header line whole; the callbacks only see complete
            # ones. Counted here, while the headers are still incomplete after a read, what it
            # holds stays below the limit plus one read, whatever one header's size.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_url_bytes + self.limits.max_header_bytes + 1024:
                self._refuse(_Refused(431, "headers_too_large", "The request headers are too large."))

    # -- parser callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        self._head_started = self.loop.time()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            self._refusal = _Refused(414, "uri_too_long", "The request target is too long.")
            raise self._refusal

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4
        if self._header_count > self.limits.max_headers:
            self._refusal = _Refused(431, "too_many_headers", "The request has too many headers.")
            raise self._refusal
        if self._header_bytes > self.limits.max_header_bytes:
            self._refusal = _Refused(431, "headers_too_large", "The request headers are too large.")
            raise self._refusal
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._head_bytes = 0
        super().on_headers_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # Every cycle that runs (pipelined ones included) writes through the cork: headcork.py.
        cycle.transport = self._cork  # type: ignore[assignment]
        self._cork.armed = True
        super()._start_asgi_task(cycle, app)

    def on_response_complete(self) -> None:
        self._cork.flush()  # a HEAD, 204 or 304 head that no body write took along
        super().on_response_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next request on this connection starts counting afresh; until its first byte, the
        # keep-alive timeout (uvicorn's) is what ends an idle connection.
        self._head_open = True
        self._head_started = float("inf")

    # -- answers -------------------------------------------------------------------------------
    def head_late(self, now: float) -> None:
        if self._head_open and now - self._head_started > self.limits.header_timeout:
            self._refuse(_Refused(408, "request_timeout", "The request headers did not arrive in time."))

    def _refuse(self, refusal: _Refused) -> None:
        """Answer with the error's status and a JSON body, then close: the rest of what the
        client sends is never read."""
        self._head_open = False
        if self.transport.is_closing():
            return
        self._cork.flush()  # a pipelined response's head goes before the refusal
        body = json.dumps({"error": {"code": refusal.code, "message": refusal.message}}).encode()
        head = [STATUS_LINE[refusal.status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()
        log.info("refused a connection from %s: %s %s", self.client, refusal.status, refusal.code)


async def _sweep(connections: set[Any], limits: EdgeLimits) -> None:
    """Every few tenths of a second: refuse (408) the connections whose headers are late."""
    loop = asyncio.get_running_loop()
    tick = min(1.0, limits.header_timeout / 4)
    while True:
        await asyncio.sleep(tick)
        now = loop.time()
        for connection in list(connections):
            if isinstance(connection, EdgeProtocol):
                connection.head_late(now)
