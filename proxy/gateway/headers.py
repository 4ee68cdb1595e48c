"""Header rules of a proxy (RFC 9110 7.6.1): what must not cross the gateway, and what it adds."""

from __future__ import annotations

import re

from proxy.gateway.ids import random_hex

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by the gateway only; a client must not be able to claim an identity or a request path.
GATEWAY_OWNED = frozenset(
    {
        "x-partner-id",
        "x-key-id",
        "x-plan",
        "x-consumer-id",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "via",
        "x-request-id",
        "host",
        "expect",
        "content-length",
    }
)
# Headers that override the URL an application sees (IIS, Symfony, Zend...): a client must never
# route itself past the gateway's matching, whoever relays it.
URL_OVERRIDES = frozenset({"x-original-url", "x-rewrite-url", "x-override-url", "x-http-destinationurl"})
# Claims about the client or the original request that only a proxy the gateway trusts may make
# (GATEWAY_TRUSTED_PROXIES); from anyone else they are dropped.
PROXY_CLAIMS = frozenset(
    {
        "forwarded",
        "true-client-ip",
        "x-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-cluster-client-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
    }
)
_PROTOS = frozenset({"http", "https"})


def forwarded_proto(claimed: str | None, scheme: str) -> str:
    """The scheme the client used: a trusted proxy's claim if it is one, else our own."""
    value = (claimed or "").split(",")[0].strip().lower()
    return value if value in _PROTOS else scheme


# WebSocket handshake headers: the gateway's own upstream connection negotiates these, so the
# client's never travel on (and mean nothing on a plain HTTP request).
HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def connection_tokens(headers: dict[str, list[str]]) -> set[str]:
    """Header names a sender listed in ``Connection``: hop-by-hop for this one connection."""
    tokens: set[str] = set()
    for value in headers.get("connection", ()):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def request_id_from(value: str | None) -> str:
    """Keep a caller's request id when it is sane (so traces join up), else make one."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return random_hex(128)  # what uuid4().hex carries


_HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)


def filter_response_headers(lowered: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The end-to-end headers of a response whose names are lower-cased (h1client.py keeps
    them so). Names are compared as bytes, and a set of its own is built only when the response
    has a Connection header naming more hop-by-hop headers."""
    named: set[bytes] | None = None
    for name, value in lowered:
        if name == b"connection":
            named = named if named is not None else set()
            named.update(t.strip().lower() for t in value.split(b",") if t.strip())
    drop = _HOP_BY_HOP_BYTES if named is None else _HOP_BY_HOP_BYTES | named
    return [pair for pair in lowered if pair[0] not in drop]
