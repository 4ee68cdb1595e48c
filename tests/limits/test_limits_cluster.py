"""Exact limits across gateway processes sharing one Redis, revocation, and usage accounting.

alice's key is on a 100/minute plan; bob's partner on a 100/day quota. Three gateway
processes serve them at once. Every test runs twice: on a single Redis and on a Redis Cluster
(``redis_backend``).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.db.models import Sum

from proxy import services
from proxy.models import ApiProduct, UsageHourly
from proxy.usage import flush_usage
from tests import factories
from tests.conftest import subprocess_database_url
from tests.servers import Process, RedisBackend, free_port, gateway_process, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def product(demo_upstream: str) -> ApiProduct:
    upstream = factories.upstream(name="demo", targets=[demo_upstream])
    product = factories.product(slug="appliances")
    factories.route(upstream=upstream, name="appliances", path="/api/v1", product=product, auth="key")
    return product


@pytest.fixture
def gateways(redis_backend: RedisBackend) -> Iterator[Any]:
    started: list[Process] = []

    def start(count: int = 1, **env: str) -> list[str]:
        urls = []
        for _ in range(count):
            port = free_port()
            proc = gateway_process(port, env={"DATABASE_URL": subprocess_database_url(), **redis_backend.env, **env})
            started.append(proc.start())
            urls.append(f"http://127.0.0.1:{port}")
        return urls

    start.processes = started  # type: ignore[attr-defined]
    yield start
    for proc in started:
        proc.stop()


def bob_partner(secret: str) -> int:
    key = services.api_key_find(secret)
    assert key is not None
    return int(key.partner_id)


async def burst(urls: list[str], key: str, total: int, path: str = "/api/v1/appliances") -> Counter[int]:
    """``total`` concurrent requests spread over the gateways."""
    limits = httpx.Limits(max_connections=total)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.get(urls[i % len(urls)] + path, headers={"Authorization": f"Bearer {key}"}) for i in range(total))
        )
    return Counter(r.status_code for r in responses)


def test_a_rate_limit_holds_exactly_across_three_gateways(product: ApiProduct, gateways: Any) -> None:
    plan = factories.plan(slug="hundred", per_minute=100)
    alice = factories.subscribed_key(product=product, plan=plan, partner="alice")
    urls = gateways(3)
    statuses = asyncio.run(burst(urls, alice, 300))
    assert statuses == {200: 100, 429: 200}


def test_a_daily_quota_holds_exactly_and_refusals_do_not_consume_it(
    product: ApiProduct, gateways: Any, redis_backend: RedisBackend
) -> None:
    plan = factories.plan(slug="daily", quota_day=100, scope="partner")
    bob = factories.subscribed_key(product=product, plan=plan, partner="bob")
    urls = gateways(3)
    statuses = asyncio.run(burst(urls, bob, 300))
    assert statuses == {200: 100, 429: 200}
    refused = httpx.get(urls[0] + "/api/v1/appliances", headers={"X-API-Key": bob})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert int(refused.headers["retry-after"]) > 0
    # 100 admitted, 201 refused: the counter shows only what was admitted.
    redis_client = redis_backend.client()
    pattern = os.environ["REDIS_PREFIX"] + ("{s*}" if redis_backend.cluster else "") + "q:p*:appliances:day:*"
    counters = [k for k in redis_client.scan_iter(match=pattern) if b"q:p%d:" % bob_partner(bob) in k]
    assert len(counters) == 1
    assert int(redis_client.get(counters[0])) == 100


def test_rate_limit_headers_count_down(product: ApiProduct, gateways: Any) -> None:
    plan = factories.plan(slug="ten", per_second=50, per_minute=10)
    carol = factories.subscribed_key(product=product, plan=plan, partner="carol")
    (url,) = gateways(1)
    seen = []
    for _ in range(11):
        response = httpx.get(url + "/api/v1/appliances", headers={"X-API-Key": carol})
        seen.append((response.status_code, response.headers.get("ratelimit-remaining")))
    assert seen[0] == (200, "9")
    assert seen[9] == (200, "0")
    assert seen[10] == (429, "0")
    assert response.headers["ratelimit-limit"] == "10"
    assert response.json()["error"]["code"] == "rate_limited"


def test_revocation_on_one_instance_refuses_the_key_on_another_within_a_second(
    product: ApiProduct, gateways: Any
) -> None:
    plan = factories.plan(slug="open")
    secret = factories.subscribed_key(product=product, plan=plan, partner="dave")
    a, b = gateways(2)
    for url in (a, b):
        assert httpx.get(url + "/api/v1/appliances", headers={"X-API-Key": secret}).status_code == 200
    key = services.api_key_find(secret)
    assert key is not None
    services.api_key_revoke(key=key)
    took = wait_until(
        lambda: httpx.get(b + "/api/v1/appliances", headers={"X-API-Key": secret}).status_code == 401, timeout=1.0
    )
    assert took < 1.0


def test_a_suspended_partner_is_refused_within_a_second(product: ApiProduct, gateways: Any) -> None:
    plan = factories.plan(slug="open")
    secret = factories.subscribed_key(product=product, plan=plan, partner="erin")
    (url,) = gateways(1)
    assert httpx.get(url + "/api/v1/appliances", headers={"X-API-Key": secret}).status_code == 200
    key = services.api_key_find(secret)
    assert key is not None
    services.partner_set_status(partner=key.partner, status="suspended")
    wait_until(
        lambda: httpx.get(url + "/api/v1/appliances", headers={"X-API-Key": secret}).status_code == 403, timeout=1.0
    )


def test_every_served_request_is_counted_once_across_a_restart(product: ApiProduct, gateways: Any) -> None:
    plan = factories.plan(slug="counted", per_minute=10_000)
    secret = factories.subscribed_key(product=product, plan=plan, partner="frank")
    first, second = gateways(2, USAGE_FLUSH_SECONDS="0.2")
    served = Counter[int]()
    served += asyncio.run(burst([first, second], secret, 150))
    # A graceful restart of one instance while the other keeps flushing concurrently.
    gateways.processes[0].stop()
    (third,) = gateways(1, USAGE_FLUSH_SECONDS="0.2")
    served += asyncio.run(burst([second, third], secret, 90, path="/api/v1/appliances/washer-1"))
    # And an instance that dies without a goodbye: counts live in Redis from admission on.
    gateways.processes[1].stop(sig=9)
    served += asyncio.run(burst([third], secret, 20))
    assert served == {200: 260}

    def flushed() -> int:
        flush_usage(orphan_after=0)
        return int(UsageHourly.objects.aggregate(n=Sum("requests"))["n"] or 0)

    wait_until(lambda: flushed() == 260, timeout=10.0, interval=0.3)
    assert flushed() == 260  # and nothing more arrives later
    rows = UsageHourly.objects.filter(key__isnull=False)
    assert rows.aggregate(n=Sum("status_2xx"))["n"] <= 260
    key = services.api_key_find(secret)
    assert key is not None and key.last_used_at is not None
