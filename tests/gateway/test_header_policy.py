"""Headers a client must not be able to use to impersonate the gateway, a proxy or another URL,
tried against a real gateway in front of the demo's echo (which answers with what it received).
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(60)

SPOOFS = {
    "X_Partner_ID": "victim",
    "x-partner_id": "victim",
    "X-Original-URL": "/admin",
    "X-Rewrite-URL": "/admin",
    "Forwarded": "for=1.2.3.4;proto=https",
    "True-Client-IP": "1.2.3.4",
    "X-Client-IP": "1.2.3.4",
    "CF-Connecting-IP": "1.2.3.4",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Prefix": "/admin",
    "X-Forwarded-Proto": "https",
    "X-Real-IP": "1.2.3.4",
}


def data(demo_upstream: str) -> dict[str, Any]:
    return {
        "upstreams": [{"name": "demo", "targets": [{"url": demo_upstream, "weight": 1}]}],
        "routes": [{"name": "echo", "path": "/echo", "upstream": "demo", "auth": "public"}],
    }


def test_an_untrusted_client_cannot_claim_identity_proxy_facts_or_another_url(
    static_gateway: Any, demo_upstream: str
) -> None:
    server = static_gateway(data(demo_upstream))
    seen = httpx.get(server.url + "/echo/h", headers={**SPOOFS, "X-Custom": "kept"}, timeout=10).json()["headers"]
    for name in SPOOFS:
        if name.lower() in ("x-forwarded-proto", "x-real-ip"):
            continue  # the gateway's own values, below
        assert name.lower() not in seen and name.lower().replace("_", "-") not in {
            k for k in seen if k != "x-partner-id"
        }, name
    assert "x-partner-id" not in seen  # a public route: no identity at all
    assert seen["x-forwarded-proto"] == "http"  # the truth: this connection is plain HTTP
    assert seen["x-real-ip"] == "127.0.0.1"
    assert seen["x-custom"] == "kept"


def test_a_trusted_proxy_may_state_the_scheme_and_the_client(static_gateway: Any, demo_upstream: str) -> None:
    server = static_gateway(data(demo_upstream), trusted_proxies=("127.0.0.1/32",))
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "Forwarded": "for=203.0.113.9"}
    seen = httpx.get(server.url + "/echo/h", headers={**headers, "X-Original-URL": "/admin"}, timeout=10).json()[
        "headers"
    ]
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-real-ip"] == "203.0.113.9"
    assert seen["forwarded"] == "for=203.0.113.9"
    assert "x-original-url" not in seen  # URL overrides go, whoever relays them


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_trace_and_two_host_headers_are_refused(static_gateway: Any, demo_upstream: str) -> None:
    server = static_gateway(data(demo_upstream))
    assert httpx.request("TRACE", server.url + "/echo/x", timeout=10).status_code == 405
    two_hosts = _raw(
        server.port, b"GET /echo/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n"
    )
    assert two_hosts.startswith(b"HTTP/1.1 400") and b"duplicate_host" in two_hosts
    # HTTP/0.9 (a bare request line): never forwarded as a request.
    nine = _raw(server.port, b"GET /echo/x\r\n\r\n")
    assert not nine.startswith(b"HTTP/1.1 200"), nine[:200]
