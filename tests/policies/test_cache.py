"""The response cache (proxy/gateway/cache.py) through a real gateway, real Redis and a real
upstream that numbers its answers: a hit repeats an old number.

Personas: acme and globex are partners with a key each; neither may ever see the other's answers.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from proxy.gateway.app import Gateway
from proxy.gateway.config import GatewayConfig
from tests.policies.conftest import PEPPER, keyed, route, upstream
from tests.servers import ThreadServer, free_port

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def backend(backends: Any) -> Any:
    return backends("origin")


@pytest.fixture
def client(static_gateway: Any, backend: Any) -> Any:
    server = static_gateway(
        {
            "upstreams": [upstream("origin", backend.url)],
            "routes": [
                route("cached", "/cached", "origin", cache={"ttl": 60, "headers": ["accept-language"]}),
                route("small", "/small", "origin", cache={"ttl": 60, "max_bytes": 1000}),
                route("limited", "/limited", "origin", cache={"ttl": 60}, limits={"minute": 3}),
                route("plain", "/plain", "origin"),
            ],
        }
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def fetch(client: httpx.Client, url: str, **kwargs: Any) -> tuple[str, int]:
    response = client.get(url, **kwargs)
    assert response.status_code == 200, response.text
    return response.headers.get("x-cache", ""), response.json()["count"]


def test_a_second_get_is_a_hit(client: httpx.Client) -> None:
    assert fetch(client, "/cached/a") == ("MISS", 1)
    hit = client.get("/cached/a")
    assert hit.headers["x-cache"] == "HIT"
    assert hit.json()["count"] == 1
    assert int(hit.headers["age"]) >= 0
    assert hit.headers["content-length"] == str(len(hit.content))
    assert hit.headers["via"] == "1.1 apigw"
    assert hit.headers["x-request-id"] != client.get("/cached/a").headers["x-request-id"]


def test_path_query_and_key_headers_make_separate_entries(client: httpx.Client) -> None:
    assert fetch(client, "/cached/q?a=1")[0] == "MISS"
    assert fetch(client, "/cached/q?a=2")[0] == "MISS"
    assert fetch(client, "/cached/q?a=1")[0] == "HIT"
    en = fetch(client, "/cached/lang", headers={"Accept-Language": "en"})
    de = fetch(client, "/cached/lang", headers={"Accept-Language": "de"})
    assert en[0] == de[0] == "MISS" and en[1] != de[1]
    assert fetch(client, "/cached/lang", headers={"Accept-Language": "en"}) == ("HIT", en[1])
    assert fetch(client, "/cached/lang", headers={"Accept-Language": "de"}) == ("HIT", de[1])


def test_routes_without_a_cache_never_touch_it(client: httpx.Client) -> None:
    first, second = client.get("/plain/a"), client.get("/plain/a")
    assert "x-cache" not in first.headers
    assert second.json()["count"] == first.json()["count"] + 1


def test_upstream_no_store_private_and_set_cookie_are_not_stored(client: httpx.Client) -> None:
    for header in ("Cache-Control:no-store", "Cache-Control:private, max-age=60", "Set-Cookie:s=1"):
        counts = {fetch(client, "/cached/x", params={"h": header})[1] for _ in range(3)}
        assert len(counts) == 3, header


def test_upstream_max_age_shortens_the_ttl(client: httpx.Client) -> None:
    params = {"h": "Cache-Control:max-age=1"}
    assert fetch(client, "/cached/short", params=params)[0] == "MISS"
    assert fetch(client, "/cached/short", params=params)[0] == "HIT"
    time.sleep(1.3)
    assert fetch(client, "/cached/short", params=params)[0] == "MISS"


def test_request_no_store_bypasses_and_no_cache_refreshes(client: httpx.Client) -> None:
    _, first = fetch(client, "/cached/r")
    assert fetch(client, "/cached/r", headers={"Cache-Control": "no-store"})[0] == "BYPASS"
    state, refreshed = fetch(client, "/cached/r", headers={"Cache-Control": "no-cache"})
    assert state == "MISS" and refreshed > first
    assert fetch(client, "/cached/r") == ("HIT", refreshed)


def test_vary_on_a_header_outside_the_key_never_serves_the_wrong_variant(client: httpx.Client) -> None:
    params = {"h": "Vary:X-Flavor"}
    _, vanilla = fetch(client, "/cached/v", params=params, headers={"X-Flavor": "vanilla"})
    assert fetch(client, "/cached/v", params=params, headers={"X-Flavor": "vanilla"}) == ("HIT", vanilla)
    state, chocolate = fetch(client, "/cached/v", params=params, headers={"X-Flavor": "chocolate"})
    assert state == "MISS" and chocolate != vanilla
    assert fetch(client, "/cached/v", params=params, headers={"X-Flavor": "chocolate"}) == ("HIT", chocolate)
    assert fetch(client, "/cached/v", params={"h": "Vary:*"})[0] == "MISS"
    assert fetch(client, "/cached/v", params={"h": "Vary:*"})[0] == "MISS"


def test_responses_over_the_size_limit_are_not_stored(client: httpx.Client) -> None:
    assert fetch(client, "/small/s", params={"size": "100"})[0] == "MISS"
    assert fetch(client, "/small/s", params={"size": "100"})[0] == "HIT"
    for _ in range(2):
        assert fetch(client, "/small/b", params={"size": "5000"})[0] == "MISS"


def test_only_get_is_cached(client: httpx.Client) -> None:
    assert client.post("/cached/p").headers["x-cache"] == "BYPASS"
    assert client.head("/cached/p").headers["x-cache"] == "BYPASS"


def test_a_hit_still_counts_against_the_limits(client: httpx.Client) -> None:
    states = [client.get("/limited/x") for _ in range(4)]
    assert [r.status_code for r in states] == [200, 200, 200, 429]
    assert [r.headers.get("x-cache") for r in states[:3]] == ["MISS", "HIT", "HIT"]


def test_one_partner_never_gets_another_partners_answer(static_gateway: Any, backend: Any) -> None:
    data: dict[str, Any] = {
        "upstreams": [upstream("origin", backend.url)],
        "routes": [route("mine", "/mine", "origin", auth="key", cache={"ttl": 60})],
    }
    secrets = keyed(data, {"acme": {}, "globex": {}})
    server = static_gateway(data, api_key_pepper=PEPPER)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        acme = fetch(client, "/mine/orders", headers={"X-API-Key": secrets["acme"]})
        globex = fetch(client, "/mine/orders", headers={"X-API-Key": secrets["globex"]})
        assert acme[0] == globex[0] == "MISS" and acme[1] != globex[1]
        assert fetch(client, "/mine/orders", headers={"X-API-Key": secrets["acme"]}) == ("HIT", acme[1])
        assert client.get("/mine/orders").status_code == 401  # no key, no cached answer


def test_with_redis_down_the_cache_is_bypassed_and_requests_still_succeed(backend: Any) -> None:
    data = {"upstreams": [upstream("origin", backend.url)], "routes": [route("c", "/c", "origin", cache={"ttl": 60})]}
    config = GatewayConfig(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_prefix="nowhere:")
    server = ThreadServer(Gateway(config, loader=lambda: data)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            states = [fetch(client, "/c/x")[0] for _ in range(3)]
    finally:
        server.stop()
    assert states[0] in ("MISS", "BYPASS")
    assert states[1:] == ["BYPASS", "BYPASS"]


def test_two_keys_of_one_partner_never_share_an_answer(static_gateway: Any, backend: Any) -> None:
    """Alice and Bob both work for acme, each with a key of their own."""
    data: dict[str, Any] = {
        "upstreams": [upstream("origin", backend.url)],
        "routes": [route("mine", "/mine", "origin", auth="key", cache={"ttl": 60})],
    }
    secrets = keyed(data, {"acme": {}})
    bob = keyed(data, {"acme-bob": {}})["acme-bob"]
    data["keys"][-1]["partner"] = data["partners"][0]["id"]  # Bob's key belongs to acme too
    data["partners"].pop()
    server = static_gateway(data, api_key_pepper=PEPPER)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        alice = fetch(client, "/mine/me", headers={"X-API-Key": secrets["acme"]})
        bobs = fetch(client, "/mine/me", headers={"X-API-Key": bob})
        assert alice[0] == bobs[0] == "MISS" and alice[1] != bobs[1]
        assert fetch(client, "/mine/me", headers={"X-API-Key": bob}) == ("HIT", bobs[1])


def test_host_cookie_and_path_spelling_are_part_of_the_identity(static_gateway: Any, backend: Any) -> None:
    data = {
        "upstreams": [upstream("origin", backend.url)],
        "routes": [route("c", "/c", "origin", cache={"ttl": 60}, encoded_slashes="keep")],
    }
    server = static_gateway(data)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        # A redirect built from a forged Host must never be served to the real host.
        evil = fetch(client, "/c/r", headers={"Host": "evil.example"})
        real = fetch(client, "/c/r", headers={"Host": "api.example.com"})
        assert evil[0] == real[0] == "MISS" and evil[1] != real[1]
        # Whose session a cookie is, the gateway cannot tell: not cached.
        assert fetch(client, "/c/s", headers={"Cookie": "session=alice"})[0] == "BYPASS"
        assert fetch(client, "/c/s", headers={"Cookie": "session=alice"})[0] == "BYPASS"
        # The key is what the upstream receives: an encoded slash is another path.
        assert fetch(client, "/c/z%2Fb")[0] == "MISS"
        assert fetch(client, "/c/z/b")[0] == "MISS"
        assert fetch(client, "/c/z%2Fb")[0] == "HIT"
