"""Redis goes away under traffic: the configured policy applies, never a 401 or 500, and the
gateway recovers by itself when Redis returns. The test runs its own redis-server; the cluster
test its own Redis Cluster, of which it kills a primary."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from localcluster.redis_cluster import RedisCluster
from proxy import services
from proxy.gateway.vocabulary import RedisKeys
from tests import factories
from tests.conftest import subprocess_database_url
from tests.servers import Process, RedisServer, cluster_url, free_port, gateway_process, wait_until

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


# -- Redis Cluster: a primary dies, its replica takes over -----------------------------------------
@pytest.fixture
def own_cluster() -> Iterator[RedisCluster]:
    """A cluster of the test's own (3 primaries, 1 replica each): this test kills one primary."""
    with RedisCluster(primaries=3, replicas=1).start() as cluster:
        # Redis' default refuses every slot while any is uncovered (between a primary's failure
        # and its replica's promotion); as docs/operations.md advises, the other shards go on.
        for node in cluster.nodes:
            node.query("CONFIG", "SET", "cluster-require-full-coverage", "no")
        yield cluster


def test_a_killed_primary_follows_the_policy_for_its_slots_only_then_exact_limits_resume(
    own_cluster: RedisCluster, demo_upstream: str
) -> None:
    upstream = factories.upstream(name="demo", targets=[demo_upstream])
    product = factories.product(slug="appliances")
    factories.route(upstream=upstream, name="appliances", path="/api/v1", product=product, auth="key")
    plan = factories.plan(slug="big", per_minute=100_000)
    names = RedisKeys(os.environ["REDIS_PREFIX"], cluster=True)
    client = own_cluster.client()

    def tag(secret: str) -> str:
        key = services.api_key_find(secret)
        assert key is not None
        return names.partner_tag(key.partner_id)

    def primary_port(secret: str) -> int:
        return int(client.get_node_from_key(tag(secret)).port)

    # Two partners whose hash tags live on different primaries: the victim's and a bystander's.
    victim = factories.subscribed_key(product=product, plan=plan, partner="victim")
    bystander = next(
        secret
        for secret in (factories.subscribed_key(product=product, plan=plan, partner=f"by{i}") for i in range(20))
        if primary_port(secret) != primary_port(victim)
    )
    url = cluster_url(own_cluster.seeds)
    procs = []
    for policy in ("deny", "local"):
        env = {
            "DATABASE_URL": subprocess_database_url(),
            "REDIS_URL": url,
            "CHANNEL_REDIS_URL": os.environ["REDIS_URL"],
            "RATELIMIT_FAILURE_POLICY": policy,
            "USAGE_FLUSH_SECONDS": "3600",
        }
        procs.append(gateway_process(free_port(), env=env).start())
    deny, local = (f"http://127.0.0.1:{proc.port}" for proc in procs)
    try:
        assert {call(deny, victim).status_code, call(deny, bystander).status_code} == {200}
        failover: list[Any] = []
        killer = threading.Thread(target=lambda: failover.append(own_cluster.kill_primary(primary_port(victim))))
        killed_at = time.monotonic()
        killer.start()
        seen: list[tuple[float, int, int, int]] = []  # (since kill, victim deny, bystander deny, victim local)
        deadline = killed_at + 60
        # Bounded: until the failover is done and the victim's calls are served from Redis again.
        while time.monotonic() < deadline and len(seen) < 5000:
            row = (time.monotonic() - killed_at, *(call(gw, k).status_code for gw, k in
                   ((deny, victim), (deny, bystander), (local, victim))))  # fmt: skip
            seen.append(row)
            if failover and row[1] == 200 and any(r[1] == 503 for r in seen):
                break
            time.sleep(0.01)
        killer.join(timeout=60)
        refused = [t for t, v, _, _ in seen if v == 503]
        print(f"failover {failover[0].seconds:.2f} s; the victim's slots refused for {max(refused):.2f} s")
        assert refused, "the dead primary's calls followed RATELIMIT_FAILURE_POLICY=deny"
        assert {v for _, v, _, _ in seen} == {200, 503}  # never a 500 or a 401
        assert {b for _, _, b, _ in seen} == {200}  # the other primaries' limits went on
        assert {lo for _, _, _, lo in seen} == {200}  # fail-open served everything
        assert max(refused) < failover[0].seconds + 3  # back within the map re-read after promotion
        # Exact again: every request counts in the promoted primary's rate buckets.
        pattern = f"{names.prefix}{tag(victim)}w2:rl:*:minute"

        def counted() -> int:  # the minute window's total (ratelimit.lua keeps it in "t")
            return sum(int(client.hget(key, "t") or 0) for key in client.scan_iter(match=pattern))

        before = counted()
        assert [call(deny, victim).status_code for _ in range(5)] == [200] * 5
        assert counted() == before + 5
    finally:
        for proc in procs:
            proc.stop()
