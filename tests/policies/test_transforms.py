"""Header transforms and the per-route body limit, through a real gateway and a real upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from proxy.gateway.transforms import HeaderTransform
from tests.policies.conftest import route, upstream

pytestmark = pytest.mark.timeout(60)

REQUEST = {
    "remove": ["X-Debug"],
    "rename": {"X-Old-Name": "X-New-Name"},
    "set": {"X-Env": "prod"},
    "add": {"X-Tag": "gateway"},
}
RESPONSE = {"remove": ["Server"], "rename": {"X-Upstream-Secret": "X-Public"}, "set": {"X-Frame-Options": "DENY"}}


@pytest.fixture
def client(static_gateway: Any, backends: Any) -> Iterator[httpx.Client]:
    backend = backends("origin")
    server = static_gateway(
        {
            "upstreams": [upstream("origin", backend.url)],
            "routes": [
                route("shaped", "/shaped", "origin", request_transform=REQUEST, response_transform=RESPONSE),
                route("tiny", "/tiny", "origin", max_body_bytes=1000),
                route("big", "/big", "origin", max_body_bytes=4 * 1024 * 1024),
                route("default", "/default", "origin"),
            ],
        },
        max_body_bytes=1024 * 1024,
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_request_headers_are_removed_renamed_set_and_added(client: httpx.Client) -> None:
    response = client.get("/shaped/x", headers={"X-Debug": "1", "X-Old-Name": "v", "X-Env": "dev", "X-Tag": "client"})
    seen = response.json()["headers"]
    assert "x-debug" not in seen and "x-old-name" not in seen
    assert seen["x-new-name"] == "v"
    assert seen["x-env"] == "prod"
    assert seen["x-tag"] == "client, gateway"


def test_response_headers_are_transformed_before_the_gateway_adds_its_own(client: httpx.Client) -> None:
    response = client.get("/shaped/x", params={"h": "X-Upstream-Secret:s3"})
    assert "aiohttp" not in response.headers.get("server", "")  # the upstream's is gone (uvicorn adds its own)
    assert response.headers["x-public"] == "s3"
    assert "x-upstream-secret" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["via"] == "1.1 apigw"


def test_the_route_body_limit_replaces_the_gateway_one(client: httpx.Client) -> None:
    assert client.post("/tiny/x", content=b"x" * 1000).status_code == 200
    refused = client.post("/tiny/x", content=b"x" * 1001)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"
    assert "1000 bytes" in refused.json()["error"]["message"]
    chunked = client.post("/tiny/x", content=iter([b"y" * 800, b"y" * 800]))
    assert chunked.status_code == 413
    assert client.post("/default/x", content=b"z" * (2 * 1024 * 1024)).status_code == 413
    assert client.post("/big/x", content=b"z" * (2 * 1024 * 1024)).json()["body_length"] == 2 * 1024 * 1024


@pytest.mark.parametrize(
    "spec",
    [
        {"remove": ["Content-Length"]},
        {"set": {"Transfer-Encoding": "chunked"}},
        {"rename": {"Host": "X-Host"}},
        {"set": {"X-Partner-ID": "forged"}},
        {"add": {"X-Request-ID": "mine"}},
        {"set": {"Bad Name": "v"}},
        {"set": {"X-A": "line\r\nbreak"}},
        {"append": {"X-A": "v"}},
        {"remove": "X-A"},
    ],
)
def test_transforms_that_would_break_the_message_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        HeaderTransform(spec)
