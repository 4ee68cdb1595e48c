"""Changes made through the admin API reach running gateway processes within a second, and
explain agrees with what a real gateway answers. The API is called over HTTP on the gateway
process itself (Django serves /api/admin/ there), as an operator's script would."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adminapi import services as token_services
from tests.adminapi.factories import staff
from tests.conftest import subprocess_database_url
from tests.servers import Process, free_port, gateway_process, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def gateways() -> Iterator[Any]:
    started: list[Process] = []

    def start() -> str:
        port = free_port()
        started.append(gateway_process(port, env={"DATABASE_URL": subprocess_database_url()}).start())
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def admin(db: None) -> dict[str, str]:
    _, secret = token_services.admin_token_create(user=staff("ops"), name="propagation")
    return {"Authorization": f"Bearer {secret}"}


def status(url: str, **headers: str) -> int:
    try:
        return httpx.get(url, headers=headers, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def call(base: str, admin: dict[str, str], method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(method, f"{base}/api/admin/v1/{path}", json=body, headers=admin, timeout=10)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def acme_key(base: str, admin: dict[str, str], demo_upstream: str) -> dict[str, Any]:
    """A product behind a key on a 100-per-minute plan, and a key of the partner subscribed to it."""
    call(
        base,
        admin,
        "POST",
        "config/apply",
        {
            "config": f"""
products: [{{slug: appliance-api, name: Appliance API}}]
plans: [{{slug: gold, name: Gold, per_minute: 100}}]
upstreams: [{{name: demo, targets: [{{url: '{demo_upstream}'}}]}}]
routes: [{{name: appliances, upstream: demo, path: /api/v1, product: appliance-api}}]
partners: [{{slug: acme, name: Acme, status: active, subscriptions: [{{product: appliance-api, plan: gold}}]}}]
"""
        },
    )
    key: dict[str, Any] = call(base, admin, "POST", "keys/", {"partner": "acme", "name": "alexa"})
    return key


def test_routes_created_changed_and_applied_through_the_api_reach_gateways_within_a_second(
    gateways: Any, admin: dict[str, str], demo_upstream: str
) -> None:
    first, second = gateways(), gateways()
    call(first, admin, "POST", "upstreams/", {"name": "demo"})
    call(first, admin, "POST", "targets/", {"upstream": "demo", "url": demo_upstream})
    assert status(f"{second}/api/v1/appliances") == 404

    call(
        first, admin, "POST", "routes/", {"name": "appliances", "upstream": "demo", "path": "/api/v1", "auth": "public"}
    )
    for base in (first, second):
        assert wait_until(lambda base=base: status(f"{base}/api/v1/appliances") == 200, timeout=1.0) < 1.0

    call(second, admin, "PATCH", "routes/appliances/", {"enabled": False})
    for base in (first, second):
        wait_until(lambda base=base: status(f"{base}/api/v1/appliances") == 404, timeout=1.0)

    exported = call(first, admin, "GET", "config/export")["config"]
    applied = call(first, admin, "POST", "config/apply", {"config": exported.replace("    enabled: false\n", "")})
    assert applied["counts"] == {"create": 0, "update": 1, "delete": 0}
    for base in (first, second):
        wait_until(lambda base=base: status(f"{base}/api/v1/appliances") == 200, timeout=1.0)


def test_a_key_revoked_through_the_api_stops_working_within_a_second(
    gateways: Any, admin: dict[str, str], demo_upstream: str
) -> None:
    base = gateways()
    key = acme_key(base, admin, demo_upstream)
    url = f"{base}/api/v1/appliances"
    wait_until(lambda: status(url, **{"X-API-Key": key["secret"]}) == 200, timeout=1.0)

    call(base, admin, "POST", f"keys/{key['prefix']}/revoke/")

    took = wait_until(lambda: status(url, **{"X-API-Key": key["secret"]}) == 401, timeout=1.0)
    assert took < 1.0


def test_a_plan_changed_through_the_api_limits_every_gateway_at_once(
    gateways: Any, admin: dict[str, str], demo_upstream: str
) -> None:
    """Each gateway keeps a credential's limits per route (pipeline.Checks): a new plan must
    still apply on the next snapshot, on a gateway that was serving the key all along."""
    first, second = gateways(), gateways()
    key = {"X-API-Key": acme_key(first, admin, demo_upstream)["secret"]}

    def limit(base: str) -> str | None:
        response = httpx.get(f"{base}/api/v1/appliances", headers=key, timeout=2)
        return response.headers.get("ratelimit-limit") if response.status_code == 200 else None

    for base in (first, second):
        wait_until(lambda base=base: limit(base) == "100", timeout=1.0)
        assert limit(base) == "100"  # served (and its check kept) under the old plan

    call(first, admin, "PATCH", "plans/gold/", {"per_minute": 6})

    for base in (first, second):
        assert wait_until(lambda base=base: limit(base) == "6", timeout=1.0) < 1.0
    # Counted against the new limit, across both gateways: the key's window already holds the
    # requests above; the 6th of the minute is the last one admitted.
    answers = [httpx.get(f"{base}/api/v1/appliances", headers=key, timeout=2) for base in (first, second) * 4]
    refused = [r for r in answers if r.status_code == 429]
    assert refused and all(r.json()["error"]["code"] == "rate_limited" for r in refused)
    assert sum(r.status_code == 200 for r in answers) < 6


def test_explain_predicts_what_a_real_gateway_answers(gateways: Any, admin: dict[str, str], demo_upstream: str) -> None:
    base = gateways()
    call(
        base,
        admin,
        "POST",
        "config/apply",
        {
            "config": f"""
products: [{{slug: appliance-api, name: Appliance API}}]
plans: [{{slug: tiny, name: Tiny, quota_day: 2}}]
upstreams: [{{name: demo, targets: [{{url: '{demo_upstream}'}}]}}]
routes:
  - {{name: appliances, upstream: demo, path: /api/v1, methods: [GET], product: appliance-api}}
  - {{name: health, upstream: demo, path: /healthz, path_type: exact, auth: public}}
partners: [{{slug: acme, name: Acme, status: active, subscriptions: [{{product: appliance-api, plan: tiny}}]}}]
"""
        },
    )
    secret = call(base, admin, "POST", "keys/", {"partner": "acme", "name": "k"})["secret"]
    keyed = {"X-API-Key": secret}
    wait_until(lambda: status(f"{base}/healthz") == 200, timeout=1.0)  # (Django's own /healthz: same answer)
    cases = [
        ("GET", "/api/v1/appliances", keyed),
        ("GET", "/api/v1/appliances", keyed),  # the whole quota
        ("GET", "/api/v1/appliances", keyed),  # 429: quota used up
        ("GET", "/api/v1/appliances", {}),
        ("DELETE", "/api/v1/appliances", keyed),
        ("GET", "/nowhere", {}),
        ("GET", "/api/v1/appliances", {"X-API-Key": secret[:-1] + ("A" if secret[-1] != "A" else "B")}),
    ]
    for method, path, headers in cases:
        predicted = call(
            base, admin, "POST", "explain", {"method": method, "url": f"http://127.0.0.1{path}", "headers": headers}
        )["verdict"]["status"]
        actual = httpx.request(method, f"{base}{path}", headers=headers, timeout=5).status_code
        assert (method, path, predicted) == (method, path, actual)
