"""Forwarding through a real gateway (uvicorn) to real upstream servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.servers import free_port
from tests.upstreams import ResettingServer, named_upstream

pytestmark = pytest.mark.timeout(60)


def route(name: str, path: str, upstream: str = "demo", **extra: Any) -> dict[str, Any]:
    extra.setdefault("auth", "public")
    return {"name": name, "path": path, "path_type": extra.pop("path_type", "prefix"), "upstream": upstream, **extra}


def upstream(name: str, *urls: str, weights: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    weights = weights or [1] * len(urls)
    return {"name": name, "targets": [{"url": u, "weight": w} for u, w in zip(urls, weights, strict=True)], **extra}


@pytest.fixture
def gateway(static_gateway: Any, demo_upstream: str) -> Iterator[httpx.Client]:
    data = {
        "upstreams": [
            upstream("demo", demo_upstream),
            upstream("slow", demo_upstream, read_timeout=0.3),
            upstream("refused", f"http://127.0.0.1:{free_port()}"),
        ],
        "routes": [
            route("appliances", "/api/v1"),
            route("echo", "/echo"),
            route("bytes", "/bytes"),
            route("status", "/status"),
            route("redirect", "/redirect", path_type="exact"),
            route("only-get", "/readonly", methods=["GET"], rewrite="/echo{path}"),
            route("stripped", "/public", strip_prefix=True),
            route("item", r"^/items/(?P<id>[a-z0-9-]+)$", path_type="regex", rewrite="/echo/item/{id}"),
            route("slow", "/slow", upstream="slow"),
            route("refused", "/refused", upstream="refused"),
        ],
    }
    server = static_gateway(data, max_body_bytes=1024 * 1024)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_it_forwards_to_the_upstream(gateway: httpx.Client) -> None:
    response = gateway.get("/api/v1/appliances")
    assert response.status_code == 200
    assert {a["id"] for a in response.json()["appliances"]} >= {"washer-1"}
    assert response.headers["via"] == "1.1 apigw"
    assert len(response.headers["x-request-id"]) == 32


def test_it_keeps_a_sane_request_id_and_replaces_a_bad_one(gateway: httpx.Client) -> None:
    kept = gateway.get("/echo/x", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    assert kept.json()["headers"]["x-request-id"] == "abc-123"
    replaced = gateway.get("/echo/x", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"
    assert replaced.json()["headers"]["x-request-id"] == replaced.headers["x-request-id"]


def test_it_sets_forwarded_headers_and_strips_hop_by_hop_ones(gateway: httpx.Client) -> None:
    response = gateway.get(
        "/echo/headers?a=1&b=%20",
        headers={
            "Connection": "keep-alive, X-Private",
            "X-Private": "hop",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "X-Custom": "kept",
            "Host": "api.example.com",
            "X-Partner-ID": "spoofed",
            "X-Forwarded-For": "203.0.113.9",
        },
    )
    seen = response.json()
    headers = seen["headers"]
    assert seen["query_string"] == "a=1&b=%20"
    assert headers["x-custom"] == "kept"
    for hop in ("x-private", "keep-alive", "te", "x-partner-id"):
        assert hop not in headers
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "api.example.com"
    assert headers["via"] == "1.1 apigw"
    assert headers["host"].startswith("127.0.0.1:")  # the target's, preserve_host is off


def test_it_passes_status_codes_head_and_redirects_untouched(gateway: httpx.Client) -> None:
    for code in (201, 204, 304, 404, 418, 500, 503):
        response = gateway.get(f"/status/{code}")
        assert response.status_code == code
        if code in (204, 304):
            assert response.content == b""
    redirect = gateway.get("/redirect", follow_redirects=False)
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "/api/v1/appliances"
    head = gateway.head("/api/v1/appliances")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0


def test_it_streams_a_large_download_chunk_by_chunk(gateway: httpx.Client) -> None:
    size = 20 * 1024 * 1024 + 7
    received = 0
    with gateway.stream("GET", f"/bytes/{size}") as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += len(chunk)
    assert received == size


def test_it_streams_a_chunked_upload(gateway: httpx.Client) -> None:
    parts = [bytes([i]) * 65536 for i in range(8)]

    def body() -> Iterator[bytes]:
        yield from parts

    response = gateway.post("/echo/upload", content=body())
    assert response.status_code == 200
    assert response.json()["body_length"] == 8 * 65536
    assert response.json()["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
    assert "chunked" in response.json()["headers"].get("transfer-encoding", "")


def test_it_forwards_a_sized_upload_with_its_length(gateway: httpx.Client) -> None:
    payload = b"z" * 300_000
    response = gateway.put("/echo/sized", content=payload)
    assert response.json()["body_length"] == len(payload)
    assert response.json()["headers"]["content-length"] == str(len(payload))


def test_sse_first_event_arrives_before_the_upstream_finishes(gateway: httpx.Client) -> None:
    started = time.monotonic()
    with gateway.stream("GET", "/api/v1/events?limit=2") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        first_at = time.monotonic() - started
        assert "appliances" in first or "hello" in first
        second = next(line for line in lines if line.startswith("data:"))
        second_at = time.monotonic() - started
    assert second
    # The demo emits a tick every second: the first event must not wait for it.
    assert first_at < second_at


def test_it_rewrites_and_strips_paths(gateway: httpx.Client) -> None:
    assert gateway.get("/items/washer-1").json()["path"] == "/echo/item/washer-1"
    assert gateway.get("/public/echo/a/b").json()["path"] == "/echo/a/b"
    assert gateway.get("/readonly/z?q=1").json()["path"] == "/echo/z"


def test_no_route_is_a_json_404(gateway: httpx.Client) -> None:
    response = gateway.get("/nothing/here")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "route_not_found"
    assert error["request_id"] == response.headers["x-request-id"]


def test_wrong_method_is_a_405_with_allow(gateway: httpx.Client) -> None:
    response = gateway.post("/readonly/x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_declared_body_over_the_limit_is_a_413(gateway: httpx.Client) -> None:
    response = gateway.post("/echo/big", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_chunked_body_over_the_limit_is_a_413(gateway: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(40):
            yield b"y" * 65536

    response = gateway.post("/echo/big", content=body())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def raw_request(base_url: str, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (httpx would normalise the path first)."""
    port = int(base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_malformed_requests_are_400s(gateway: httpx.Client) -> None:
    base = str(gateway.base_url).rstrip("/")
    status, body = raw_request(
        base, b"GET /api/v1/../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 400
    assert json.loads(body)["error"]["code"] == "bad_request"
    status, _ = raw_request(base, b"GET /api/v1/x/../appliances HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200  # resolves inside the route: allowed
    status, body = raw_request(
        base, b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\nConnection: close\r\n\r\n"
    )
    assert status == 400


def test_a_refused_upstream_is_a_502(gateway: httpx.Client) -> None:
    response = gateway.get("/refused/x")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unavailable"


def test_a_slow_upstream_is_a_504(gateway: httpx.Client) -> None:
    response = gateway.get("/slow/2")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_a_resetting_upstream_is_a_502(static_gateway: Any) -> None:
    reset = ResettingServer().start()
    try:
        server = static_gateway(
            {"upstreams": [upstream("r", f"http://127.0.0.1:{reset.port}")], "routes": [route("r", "/", upstream="r")]}
        )
        response = httpx.get(server.url + "/anything", timeout=10)
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_unavailable"
    finally:
        reset.stop()


def test_weighted_round_robin_respects_weights(static_gateway: Any) -> None:
    a, b = named_upstream("a").start(), named_upstream("b").start()
    try:
        server = static_gateway(
            {"upstreams": [upstream("ab", a.url, b.url, weights=[3, 1])], "routes": [route("ab", "/", upstream="ab")]}
        )
        with httpx.Client(base_url=server.url) as client:
            names = [client.get("/").json()["name"] for _ in range(40)]
        assert names.count("a") == 30
        assert names.count("b") == 10
    finally:
        a.stop()
        b.stop()


def test_cookies_are_never_shared_between_callers(static_gateway: Any) -> None:
    a = named_upstream("a").start()
    try:
        server = static_gateway({"upstreams": [upstream("a", a.url)], "routes": [route("a", "/", upstream="a")]})
        first = httpx.get(server.url + "/set-cookie")
        assert "session=secret-of-a" in first.headers["set-cookie"]
        second = httpx.get(server.url + "/who")  # another caller, no cookie of its own
        assert second.json()["cookies"] == []
    finally:
        a.stop()
