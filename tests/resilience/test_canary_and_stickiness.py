"""Weighted canaries and consistent hashing end to end: a real gateway, real upstreams, real keys.

Personas: acme, globex, initech and umbrella are active partners, each with one API key.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest

from proxy.gateway import apikeys
from tests.resilience.conftest import route, upstream

pytestmark = pytest.mark.timeout(90)

PEPPER = b"pepper-of-the-stickiness-tests"
PARTNERS = ("acme", "globex", "initech", "umbrella")


def keyed_snapshot(
    upstreams: list[dict[str, Any]], routes: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, str]]:
    secrets: dict[str, str] = {}
    keys = []
    for number, slug in enumerate(PARTNERS, start=1):
        secret, prefix = apikeys.generate()
        secrets[slug] = secret
        keys.append({"id": number, "prefix": prefix, "hash": apikeys.digest(PEPPER, secret), "partner": number})
    data = {
        "upstreams": upstreams,
        "routes": routes,
        "plans": [],
        "partners": [{"id": n, "slug": s, "status": "active", "subscriptions": {}} for n, s in enumerate(PARTNERS, 1)],
        "keys": keys,
    }
    return data, secrets


def test_a_5_percent_canary_gets_5_percent_end_to_end(static_gateway: Any, backends: Any) -> None:
    stable, canary = backends("stable"), backends("canary")
    server = static_gateway(
        {
            "upstreams": [upstream("app", stable.url, canary.url, weights=[95, 5])],
            "routes": [route("app", "/app", "app")],
        }
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        counts = Counter(client.get("/app/x").json()["name"] for _ in range(1_000))
    assert abs(counts["canary"] / 1_000 - 0.05) <= 0.02


def test_consistent_hashing_keeps_each_partner_on_one_target(static_gateway: Any, backends: Any) -> None:
    targets = [backends(f"t{i}") for i in range(3)]
    data, secrets = keyed_snapshot(
        [upstream("sticky", *(t.url for t in targets), algorithm="consistent_hash", hash_on="partner")],
        [route("sticky", "/sticky", "sticky", auth="key")],
    )
    server = static_gateway(data, api_key_pepper=PEPPER)
    homes: dict[str, str] = {}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for slug, secret in secrets.items():
            seen = {client.get("/sticky/x", headers={"X-API-Key": secret}).json()["name"] for _ in range(20)}
            assert len(seen) == 1, (slug, seen)
            homes[slug] = seen.pop()
        # A target dies: its partners move, each to one new home; nobody else moves.
        gone = next(t for t in targets if t.name in homes.values())
        gone.stop()
        for slug, secret in secrets.items():
            seen = {client.get("/sticky/x", headers={"X-API-Key": secret}).json()["name"] for _ in range(20)}
            assert len(seen) == 1, (slug, seen)
            if homes[slug] == gone.name:
                assert seen != {gone.name}
            else:
                assert seen == {homes[slug]}
