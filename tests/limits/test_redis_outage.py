"""Redis goes away under traffic: the configured policy applies, never a 401 or 500, and the
gateway recovers by itself when Redis returns. The test runs its own redis-server."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests import factories
from tests.conftest import subprocess_database_url
from tests.servers import Process, RedisServer, free_port, gateway_process, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def key(demo_upstream: str) -> str:
    upstream = factories.upstream(name="demo", targets=[demo_upstream])
    product = factories.product(slug="appliances")
    factories.route(upstream=upstream, name="appliances", path="/api/v1", product=product, auth="key")
    plan = factories.plan(slug="small", per_minute=1000)
    return factories.subscribed_key(product=product, plan=plan, partner="grace", name="k")


@pytest.fixture
def gateway_on(own_redis: RedisServer) -> Iterator[Any]:
    procs: list[Process] = []

    def start(policy: str) -> str:
        port = free_port()
        procs.append(
            gateway_process(
                port,
                env={
                    "DATABASE_URL": subprocess_database_url(),
                    "REDIS_URL": own_redis.url,
                    "RATELIMIT_FAILURE_POLICY": policy,
                    "USAGE_FLUSH_SECONDS": "3600",
                },
            ).start()
        )
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.stop()


def call(url: str, key: str) -> httpx.Response:
    return httpx.get(url + "/api/v1/appliances", headers={"X-API-Key": key}, timeout=10)


def test_fail_open_serves_from_a_local_limiter_and_recovers(own_redis: RedisServer, gateway_on: Any, key: str) -> None:
    url = gateway_on("local")
    assert call(url, key).status_code == 200
    own_redis.stop()
    statuses = Counter(call(url, key).status_code for _ in range(30))
    assert statuses == {200: 30}
    # Limits still apply locally: headers are there.
    assert "ratelimit-remaining" in call(url, key).headers
    own_redis.start()
    client = redis.Redis.from_url(own_redis.url)
    # Recovery: requests reach Redis again, and what was counted meanwhile arrives too.
    wait_until(lambda: call(url, key).status_code == 200 and _usage_total(client) > 0, timeout=10, interval=0.2)
    # The restarted Redis is empty: what it holds now is the 31 requests counted in memory
    # during the outage (they ride along with the first calls after it) plus those after it.
    wait_until(lambda: _usage_total(client) >= 33, timeout=5, interval=0.2)


def _usage_total(client: redis.Redis) -> int:
    """Requests counted in the usage hash (the gateways here never flush it to the database)."""
    try:
        data = client.hgetall(os.environ["REDIS_PREFIX"] + "usage")
    except redis.RedisError:
        return 0
    return sum(int(v) for k, v in data.items() if k.endswith(b"|req"))


def test_fail_closed_answers_503_and_recovers(own_redis: RedisServer, gateway_on: Any, key: str) -> None:
    url = gateway_on("deny")
    assert call(url, key).status_code == 200
    own_redis.stop()
    started = time.monotonic()
    responses = [call(url, key) for _ in range(20)]
    assert {r.status_code for r in responses} == {503}
    assert {r.json()["error"]["code"] for r in responses} == {"limiter_unavailable"}
    assert responses[0].headers["retry-after"] == "1"
    assert time.monotonic() - started < 10  # no waiting on timeouts per request
    own_redis.start()
    wait_until(lambda: call(url, key).status_code == 200, timeout=10, interval=0.2)
