"""Usage moves from Redis into hourly rows exactly once: crashes and concurrent flushers. Each
test runs on a single Redis and on a Redis Cluster (usage sharded by hash tag there)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum

from proxy import configbus, usage
from proxy.models import Partner, Route, UsageFlush, UsageHourly
from tests import factories
from tests.servers import RedisBackend

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = 493_000  # hours since the epoch: 2026-03-29 16:00 UTC


@pytest.fixture
def ids(redis_backend: RedisBackend) -> dict[str, Any]:
    product = factories.product(slug="p")
    route = factories.route(upstream=factories.upstream(name="u"), name="r", path="/r", product=product)
    partner = factories.partner(slug="hana")
    key, _ = factories.api_key(partner=partner, name="k")
    return {"partner": partner.pk, "key": key.pk, "route": route.pk}


def usage_key(ids: dict[str, Any]) -> str:
    """The usage hash the limiter counts this partner in (one per hash tag on a cluster)."""
    names = configbus.keys()
    return names.usage_key(names.partner_tag(ids["partner"]))


def batch_index(ids: dict[str, Any]) -> str:
    names = configbus.keys()
    return names.usage_batch_index(names.partner_tag(ids["partner"]))


def count(ids: dict[str, Any], n: int, metric: str = "req") -> None:
    field = f"{HOUR}|{ids['partner']}|{ids['key']}|{ids['route']}|p|{metric}"
    configbus.redis_client().hincrby(usage_key(ids), field, n)


def total(column: str = "requests") -> int:
    return int(UsageHourly.objects.aggregate(n=Sum(column))["n"] or 0)


def test_counts_land_in_the_right_hourly_row(ids: dict[str, Any]) -> None:
    count(ids, 7)
    count(ids, 5, "2xx")
    count(ids, 2, "429")
    configbus.redis_client().hset(usage_key(ids), f"last|{ids['key']}", 1_800_000_000)
    assert usage.flush_usage() == 4
    row = UsageHourly.objects.get()
    assert row.hour == datetime.fromtimestamp(HOUR * 3600, tz=UTC)
    assert (row.requests, row.status_2xx, row.status_429) == (7, 5, 2)
    assert row.key_id == ids["key"] and row.route_id == ids["route"] and row.product == "p"
    assert row.key is not None and row.key.last_used_at == datetime.fromtimestamp(1_800_000_000, tz=UTC)
    count(ids, 3)
    usage.flush_usage()
    assert total() == 10
    assert usage.flush_usage() == 0  # nothing new: nothing applied


def test_a_crash_between_claim_and_write_loses_nothing(ids: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    count(ids, 11)

    def crash(data: dict[str, int]) -> None:
        raise RuntimeError("killed mid-flush")

    monkeypatch.setattr(usage, "_apply", crash)
    with pytest.raises(RuntimeError):
        usage.flush_usage()
    assert total() == 0
    monkeypatch.undo()
    count(ids, 4)  # counting went on meanwhile
    usage.flush_usage(orphan_after=3600)  # the orphan is too young to be replayed yet
    assert total() == 4
    usage.flush_usage(orphan_after=0)
    assert total() == 15
    assert usage.flush_usage(orphan_after=0) == 0


def test_a_batch_applied_before_a_crash_is_not_applied_again(
    ids: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    count(ids, 9)
    client = configbus.redis_client()
    # Crash after the database commit, before the batch is forgotten in Redis.
    monkeypatch.setattr(type(client), "delete", lambda self, *keys: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError):
        usage.flush_usage()
    monkeypatch.undo()
    assert total() == 9
    assert client.zcard(batch_index(ids)) == 1
    usage.flush_usage(orphan_after=0)
    assert total() == 9  # replay refused by the UsageFlush row
    assert client.zcard(batch_index(ids)) == 0


def test_concurrent_flushers_count_everything_once(ids: dict[str, Any]) -> None:
    stop = threading.Event()
    counted = 0

    def writer() -> None:
        nonlocal counted
        while not stop.is_set() and counted < 3000:
            count(ids, 1)
            counted += 1

    def flusher() -> None:
        try:
            while not stop.is_set():
                usage.flush_usage(orphan_after=0)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer), threading.Thread(target=flusher), threading.Thread(target=flusher)]
    for thread in threads:
        thread.start()
    threads[0].join(timeout=60)
    stop.set()
    for thread in threads[1:]:
        thread.join(timeout=60)
    usage.flush_usage(orphan_after=0)
    assert total() == counted == 3000
    assert UsageFlush.objects.count() >= 1


def test_monthly_quota_use_is_published_for_the_alert(ids: dict[str, Any]) -> None:
    from prometheus_client import REGISTRY

    plan = factories.plan(slug="monthly", quota_month=200, scope="partner")
    route = Route.objects.get(pk=ids["route"])
    assert route.product is not None
    factories.subscription(partner=Partner.objects.get(pk=ids["partner"]), product=route.product, plan=plan)
    this_hour = int(datetime.now(tz=UTC).timestamp() // 3600)
    field = f"{this_hour}|{ids['partner']}|{ids['key']}|{ids['route']}|p"
    configbus.redis_client().hincrby(usage_key(ids), field + "|req", 60)
    configbus.redis_client().hincrby(usage_key(ids), field + "|429", 10)
    usage.flush_usage()
    usage.report_quota_usage()
    ratio = REGISTRY.get_sample_value("apigw_quota_used_ratio", {"partner": "hana", "plan": "monthly"})
    assert ratio == pytest.approx(50 / 200)


def test_usage_under_every_hash_tag_is_flushed_at_once(ids: dict[str, Any]) -> None:
    # One hash on a single Redis; on a cluster one per tag, spread over every primary.
    shards = configbus.keys().usage_keys()
    field = f"{HOUR}|{ids['partner']}|{ids['key']}|{ids['route']}|p|req"
    for key in shards:
        configbus.redis_client().hincrby(key, field, 2)
    assert usage.flush_usage() == len(shards)
    assert total() == 2 * len(shards)
    assert UsageHourly.objects.count() == 1
    assert usage.flush_usage() == 0
