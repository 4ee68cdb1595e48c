"""CORS (proxy/gateway/cors.py) through a real gateway and a real upstream.

Personas: https://app.example.com is the partner's web app (allowed); https://evil.example.net
is not; acme's key is the app's credential.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from proxy.gateway.cors import CorsPolicy
from tests.policies.conftest import PEPPER, keyed, route, upstream

pytestmark = pytest.mark.timeout(60)

APP = "https://app.example.com"
EVIL = "https://evil.example.net"


@pytest.fixture
def setup(static_gateway: Any, backends: Any) -> Any:
    backend = backends("origin")
    cors = {
        "origins": [APP, "https://*.partner.example"],
        "methods": ["GET", "POST"],
        "expose_headers": ["X-Request-ID", "RateLimit-Remaining"],
        "credentials": True,
        "max_age": 900,
    }
    data: dict[str, Any] = {
        "upstreams": [upstream("origin", backend.url)],
        "routes": [
            route("api", "/api", "origin", auth="key", cors=cors),
            route("open", "/open", "origin", cors={"origins": ["*"]}),
            route("nocors", "/nocors", "origin"),
        ],
    }
    secrets = keyed(data, {"acme": {}})
    server = static_gateway(data, api_key_pepper=PEPPER)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client, backend, secrets["acme"]


def preflight(client: httpx.Client, path: str, origin: str, method: str, headers: str = "") -> httpx.Response:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=request_headers)


def hits(backend: Any) -> int:
    return int(httpx.get(backend.url + "/_hits").json()["hits"])


def test_the_gateway_answers_a_preflight_without_credentials_or_the_upstream(setup: Any) -> None:
    client, backend, _ = setup
    response = preflight(client, "/api/orders", APP, "POST", "X-API-Key, Content-Type")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    assert response.headers["access-control-allow-headers"] == "content-type, x-api-key"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-max-age"] == "900"
    assert "Origin" in response.headers["vary"]
    assert hits(backend) == 0


@pytest.mark.parametrize(
    ("origin", "method", "headers", "code"),
    [
        (EVIL, "GET", "", "cors_origin_not_allowed"),
        ("https://example.com.partner.example.net", "GET", "", "cors_origin_not_allowed"),
        (APP, "DELETE", "", "cors_method_not_allowed"),
        (APP, "GET", "X-Secret-Header", "cors_headers_not_allowed"),
    ],
)
def test_a_preflight_outside_the_policy_is_refused_with_a_reason(
    setup: Any, origin: str, method: str, headers: str, code: str
) -> None:
    client, _, _ = setup
    response = preflight(client, "/api/orders", origin, method, headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == code
    assert "access-control-allow-origin" not in response.headers


def test_subdomain_patterns_match_subdomains_only(setup: Any) -> None:
    client, _, _ = setup
    assert preflight(client, "/api/x", "https://shop.partner.example", "GET").status_code == 204
    assert preflight(client, "/api/x", "https://partner.example", "GET").status_code == 403
    assert preflight(client, "/api/x", "http://shop.partner.example", "GET").status_code == 403


def test_actual_requests_get_cors_headers_and_upstream_ones_are_replaced(setup: Any) -> None:
    client, _, key = setup
    response = client.get(
        "/api/orders",
        params={"h": "Access-Control-Allow-Origin:*"},
        headers={"Origin": APP, "X-API-Key": key},
    )
    assert response.status_code == 200
    assert response.headers.get_list("access-control-allow-origin") == [APP]
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-expose-headers"] == "ratelimit-remaining, x-request-id"
    assert "Origin" in response.headers.get_list("vary")


def test_errors_carry_cors_headers_so_the_page_can_read_them(setup: Any) -> None:
    client, _, _ = setup
    response = client.get("/api/orders", headers={"Origin": APP})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == APP


def test_a_disallowed_origin_gets_no_cors_headers_on_actual_requests(setup: Any) -> None:
    client, _, key = setup
    response = client.get("/api/orders", headers={"Origin": EVIL, "X-API-Key": key})
    assert response.status_code == 200  # the server does not police; the browser does
    assert "access-control-allow-origin" not in response.headers


def test_any_origin_without_credentials_is_a_literal_star(setup: Any) -> None:
    client, _, _ = setup
    response = client.get("/open/x", headers={"Origin": EVIL})
    assert response.headers["access-control-allow-origin"] == "*"
    assert preflight(client, "/open/x", EVIL, "PUT").headers["access-control-allow-origin"] == "*"


def test_a_preflight_on_a_route_without_cors_goes_to_the_upstream(setup: Any) -> None:
    client, backend, _ = setup
    response = preflight(client, "/nocors/x", APP, "GET")
    assert response.status_code == 200
    assert response.json()["method"] == "OPTIONS"
    assert hits(backend) == 1


def test_a_policy_needs_origins_that_look_like_origins() -> None:
    with pytest.raises(ValueError):
        CorsPolicy({"origins": []})
    with pytest.raises(ValueError):
        CorsPolicy({"origins": ["app.example.com"]})
    with pytest.raises(ValueError):
        CorsPolicy({"origins": ["https://app.example.com/path"]})


def test_any_origin_with_credentials_is_refused_by_validation_and_made_safe_if_stored() -> None:
    from proxy.gateway.cors import CorsPolicy
    from proxy.gateway.policy import TrafficPolicy

    with pytest.raises(ValueError, match="origins listed"):
        CorsPolicy({"origins": ["*"], "credentials": True})
    stored = TrafficPolicy({"cors": {"origins": ["*"], "credentials": True}})  # a row from before
    assert stored.cors is not None and not stored.cors.credentials


def test_websocket_handshakes_check_the_origin(static_gateway: Any) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from tests.upstreams import WebSocketUpstream

    ws_upstream = WebSocketUpstream().start()
    try:
        data = {
            "upstreams": [{"name": "ws", "targets": [{"url": ws_upstream.url, "weight": 1}]}],
            "routes": [
                {
                    "name": "socket",
                    "path": "/ws",
                    "upstream": "ws",
                    "protocols": ["websocket"],
                    "auth": "public",
                    "cors": {"origins": ["https://app.example.com"], "credentials": True},
                }
            ],
        }
        server = static_gateway(data)
        url = "ws" + server.url.removeprefix("http") + "/ws"
        with connect(url, origin="https://app.example.com", open_timeout=10) as ws:  # type: ignore[arg-type]
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
        with connect(url, open_timeout=10) as ws:  # no Origin: not a browser
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
        with pytest.raises(InvalidStatus) as refused:
            connect(url, origin="https://evil.example", open_timeout=10)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
    finally:
        ws_upstream.stop()
