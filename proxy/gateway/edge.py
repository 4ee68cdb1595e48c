"""The gateway's HTTP/1.1 server protocol: uvicorn's httptools protocol with the framing limits
of an internet-facing proxy, enforced while bytes arrive, before anything is assembled.

uvicorn's httptools protocol has no limit on the request line, the header block or the number
of headers, no deadline for headers to arrive and no cap on connections: one 200 MiB header took
a worker from 115 MB to 779 MB, and silent connections stayed open for ever. This subclass counts
bytes in ``data_received`` (before the parser buffers them) and in the parser's callbacks, and
answers like nginx and Envoy do:

| limit (env variable)                    | default | answer |
|-----------------------------------------|---------|--------|
| request target (``GATEWAY_MAX_URL_BYTES``)      | 8 KiB   | 414, close |
| header block (``GATEWAY_MAX_HEADER_BYTES``)     | 32 KiB  | 431, close (nginx: 4 × 8k) |
| header count (``GATEWAY_MAX_HEADERS``)          | 100     | 431, close (Envoy: 100) |
| headers complete within (``GATEWAY_HEADER_TIMEOUT``) | 10 s | 408, close (slowloris) |
| connections per process (``GATEWAY_MAX_CONNECTIONS``) | 10,000 | 503 at once to new ones |

Idle keep-alive connections are closed by uvicorn's ``--timeout-keep-alive``; request bodies have
their own idle and total deadlines where they are read (body.py); WebSocket messages are capped
by uvicorn's ``--ws-max-size`` before they are assembled (and decompressed).

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
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

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
        )


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class EdgeProtocol(HttpToolsProtocol):
    limits = EdgeLimits.from_env()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True  # between a request's first byte and its complete headers
        self._head_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: _Refused | None = None

    # -- connections ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            # New connections get a fast answer; the ones being served are not disturbed.
            self._refuse(_Refused(503, "too_many_connections", "The gateway is at its connection limit."))
            return
        self._arm_head_timer()  # a connection that never sends a byte must end too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    # -- bytes ---------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._head_open:
            self._head_bytes += len(data)
            # Counted before the parser sees (and buffers) them: nothing past the limit is kept.
            if self._head_bytes > self.limits.max_url_bytes + self.limits.max_header_bytes + 1024:
                self._refuse(_Refused(431, "headers_too_large", "The request headers are too large."))
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            refusal = self._refusal or _Refused(400, "bad_request", "The request is not valid HTTP/1.1.")
            self._refuse(refusal)

    # -- parser callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._header_bytes = 0
        self._header_count = 0
        self._arm_head_timer()

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
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open = True  # the next request on this connection starts counting afresh

    # -- answers -------------------------------------------------------------------------------
    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timeout)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._head_open:  # armed only while a request's headers are awaited
            self._refuse(_Refused(408, "request_timeout", "The request headers did not arrive in time."))

    def _refuse(self, refusal: _Refused) -> None:
        """Answer with the error's status and a JSON body, then close: the rest of what the
        client sends is never read."""
        self._disarm_head_timer()
        if self.transport.is_closing():
            return
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
