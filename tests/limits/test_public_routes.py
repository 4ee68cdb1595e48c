"""Public routes: anonymous callers are limited per client address when the route has limits,
and a route without limits costs no limiter call at all (pipeline.NO_LIMITS), through a real
gateway, a real upstream and the tests' Redis."""

from __future__ import annotations

from typing import Any

import httpx

from tests.upstreams import named_upstream


def _snapshot(upstream_url: str) -> dict[str, Any]:
    return {
        "upstreams": [{"name": "up", "targets": [{"url": upstream_url, "weight": 1}]}],
        "routes": [
            {
                "id": 1,
                "name": "limited",
                "path": "/limited",
                "path_type": "prefix",
                "upstream": "up",
                "auth": "public",
                "limits": {"minute": 3},
            },
            {"id": 2, "name": "open", "path": "/open", "path_type": "prefix", "upstream": "up", "auth": "public"},
        ],
    }


def test_a_public_route_with_limits_counts_each_anonymous_caller(static_gateway: Any) -> None:
    upstream = named_upstream("up").start()
    try:
        server = static_gateway(_snapshot(upstream.url))
        with httpx.Client(base_url=server.url, timeout=10) as client:
            answers = [client.get("/limited/x") for _ in range(4)]
            open_answers = [client.get("/open/x") for _ in range(20)]
            limiter_calls = server.gateway.limiter.batcher.calls  # type: ignore[attr-defined]
    finally:
        upstream.stop()
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert answers[3].json()["error"]["code"] == "rate_limited"
    # The route without limits: answered, no RateLimit headers, and not one call to the limiter
    # (the four above were one call each: sent one after the other).
    assert all(a.status_code == 200 and "ratelimit-limit" not in a.headers for a in open_answers)
    assert limiter_calls == 4
