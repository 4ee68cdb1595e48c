"""Per-request state, one object passed through the phases."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from proxy.gateway.balancer import Target
from proxy.gateway.headers import request_id_from
from proxy.gateway.routing import RouteMatch, split_host
from proxy.gateway.types import Scope

if TYPE_CHECKING:  # auth.py imports this module
    from proxy.gateway.auth import Identity

# WebSocket scopes say ws/wss; upstreams are told the transport the way HTTP says it.
_SCHEMES = {"ws": "http", "wss": "https"}


@dataclass(slots=True, eq=False)
class RequestContext:
    method: str
    path: str
    raw_path: bytes
    query_string: bytes
    raw_headers: list[tuple[bytes, bytes]]
    headers: dict[str, list[str]]
    host: str
    scheme: str
    client_ip: str
    request_id: str
    started: float
    http_version: str = "1.1"
    match: RouteMatch | None = None
    target: Target | None = None
    # Response-side bookkeeping, read by the log phase.
    status: int = 0
    response_started: bool = False
    bytes_sent: int = 0
    upstream_started: float = 0.0
    upstream_finished: float = 0.0
    error_code: str = ""
    body_too_large: bool = False
    body_timed_out: bool = False
    client_gone: bool = False
    # Filled by later phases (authentication, limits): headers to add to the response and
    # identity headers to send upstream.
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    upstream_headers: list[tuple[str, str]] = field(default_factory=list)
    # Who called (set by auth), None for anonymous callers.
    identity: Identity | None = None
    # The admission phase in progress (pipeline.py): where a refusal happened.
    phase: str = ""
    # The limiter's verdict: "" (no limit applied), allowed, rate_limited, quota_exceeded,
    # limiter_unavailable (deny policy) or local (fail-open, counted in-process).
    limit_outcome: str = ""
    # Where this request's usage is counted (ratelimit.py), "" for anonymous callers.
    usage_prefix: str = ""
    # The header that carried an API key: the gateway consumed it, the upstream never sees it.
    consumed_header: str = ""
    # W3C trace context: kept from the caller's traceparent or generated.
    trace_id: str = ""
    span_id: str = ""
    traceparent: str = ""  # the value sent upstream (tracing.start_trace)
    # A streamed response (server-sent events) or a WebSocket session: long by design, so the
    # log phase records it as a stream, not as a slow request.
    streamed: bool = False
    ws_messages_up: int = 0
    ws_messages_down: int = 0
    # The TCP peer when ``client_ip`` was taken from X-Forwarded-For behind a trusted proxy.
    peer_ip: str = ""
    # Upstream attempts made (more than 1 when retried on another target).
    attempts: int = 0

    @classmethod
    def from_scope(cls, scope: Scope) -> RequestContext:
        """The context of an ASGI http or websocket scope (explain builds a scope too)."""
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        headers: dict[str, list[str]] = {}
        for name, value in raw_headers:
            key = name.decode("latin-1").lower()
            values = headers.get(key)
            if values is None:  # no empty list built for setdefault on every header
                headers[key] = [value.decode("latin-1")]
            else:
                values.append(value.decode("latin-1"))
        request_ids = headers.get("x-request-id")
        client = scope.get("client")
        host_values = headers.get("host")
        scheme: str = scope.get("scheme") or "http"
        return cls(
            method=scope.get("method", "GET"),  # WebSocket scopes have none: a handshake is a GET
            path=scope["path"],
            raw_path=scope.get("raw_path") or b"",
            query_string=scope.get("query_string", b""),
            raw_headers=raw_headers,
            headers=headers,
            host=split_host(host_values[0]) if host_values else "",
            scheme=_SCHEMES.get(scheme, scheme),
            client_ip=client[0] if client else "",
            request_id=request_id_from(request_ids[0] if request_ids else None),
            started=time.perf_counter(),
            http_version=scope.get("http_version") or "1.1",
        )

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None
