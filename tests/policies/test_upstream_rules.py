"""Routing by API version header or by partner to another upstream, through a real gateway.

Personas: beta-co is in the canary programme; acme is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from proxy.gateway.policy import UpstreamRule
from tests.policies.conftest import PEPPER, keyed, route, upstream

pytestmark = pytest.mark.timeout(60)

RULES = [
    {"header": "X-API-Version", "value": "2", "upstream": "v2"},
    {"partners": ["beta-co"], "upstream": "canary"},
]


@pytest.fixture
def setup(static_gateway: Any, backends: Any) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    v1, v2, canary = backends("v1"), backends("v2"), backends("canary")
    data: dict[str, Any] = {
        "upstreams": [upstream("v1", v1.url), upstream("v2", v2.url), upstream("canary", canary.url)],
        "routes": [
            route("api", "/api", "v1", auth="key", upstream_rules=RULES),
            route("public", "/public", "v1", upstream_rules=RULES[:1], cache={"ttl": 60}),
        ],
    }
    secrets = keyed(data, {"acme": {}, "beta-co": {}})
    server = static_gateway(data, api_key_pepper=PEPPER)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client, secrets


def test_the_version_header_picks_the_upstream(setup: Any) -> None:
    client, secrets = setup
    acme = {"X-API-Key": secrets["acme"]}
    assert client.get("/api/x", headers=acme).json()["name"] == "v1"
    assert client.get("/api/x", headers={**acme, "X-API-Version": "2"}).json()["name"] == "v2"
    assert client.get("/api/x", headers={**acme, "X-API-Version": "3"}).json()["name"] == "v1"


def test_a_beta_partner_goes_to_the_canary(setup: Any) -> None:
    client, secrets = setup
    beta = {"X-API-Key": secrets["beta-co"]}
    assert client.get("/api/x", headers=beta).json()["name"] == "canary"
    assert client.get("/api/x", headers={**beta, "X-API-Version": "2"}).json()["name"] == "v2"  # first rule wins


def test_the_cache_keeps_versions_apart(setup: Any) -> None:
    client, _ = setup
    assert client.get("/public/x").json()["name"] == "v1"
    assert client.get("/public/x", headers={"X-API-Version": "2"}).json()["name"] == "v2"
    hit = client.get("/public/x", headers={"X-API-Version": "2"})
    assert hit.headers["x-cache"] == "HIT" and hit.json()["name"] == "v2"
    assert client.get("/public/x").json()["name"] == "v1"


@pytest.mark.parametrize(
    "spec",
    [{}, {"upstream": "v2"}, {"upstream": "v2", "value": "2"}, {"upstream": "v2", "header": "X-A", "colour": "red"}],
)
def test_incomplete_rules_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        UpstreamRule.from_spec(spec)
