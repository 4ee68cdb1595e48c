"""Usage: requests over time, status counts, latency, quotas used vs remaining, forecast, CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal import charts, reports
from portal.forecast import quota_runs_out, recent_rate
from portal.models import PartnerMembership
from proxy import configbus
from proxy.models import ApiKey, ApiProduct, Plan
from tests.portal import factories

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 20, 14, 25, tzinfo=UTC)


def hour(n: int = 0) -> datetime:
    """The start of the hour ``n`` hours before the current one."""
    return timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=n)


@pytest.fixture
def keys(alice: PartnerMembership, product: ApiProduct, plan: Plan) -> tuple[ApiKey, ApiKey]:
    factories.subscribe(alice.partner, product, plan)
    return factories.make_key(alice.partner, "one"), factories.make_key(alice.partner, "two")


@pytest.fixture
def traffic(alice: PartnerMembership, keys: tuple[ApiKey, ApiKey]) -> None:
    one, two = keys
    p = alice.partner
    factories.usage(
        p, hour(0), key=one, requests=10, status_2xx=7, status_4xx=1, status_5xx=1, status_429=1, latency_ms_sum=450
    )
    factories.usage(p, hour(0), key=two, product="energy", requests=5, status_2xx=5, latency_ms_sum=50)
    factories.usage(p, hour(30), key=one, requests=100, status_2xx=100, latency_ms_sum=1000)  # only in 7d / 30d
    factories.usage(p, hour(24 * 40), key=one, requests=999, status_2xx=999)  # older than every range


# -- the report -----------------------------------------------------------------------------------
def test_the_24h_report_counts_the_last_24_hours(alice: PartnerMembership, traffic: None) -> None:
    report = reports.usage_report(partner=alice.partner, range_name="24h")
    assert len(report.buckets) == 24
    assert report.buckets[-1].start == hour(0) and report.buckets[0].start == hour(23)
    t = report.totals
    assert (t.requests, t.status_2xx, t.status_4xx, t.status_5xx, t.status_429) == (15, 12, 1, 1, 1)
    # Latency is averaged over the responses timed; requests refused by a limit are not.
    assert t.avg_latency_ms == pytest.approx(500 / 14)
    assert report.buckets[-1].counts.requests == 15
    assert [(p, n) for p, n, _c in report.by_product] == [("appliances", "Appliances"), ("energy", "energy")]


def test_longer_ranges_use_coarser_steps(alice: PartnerMembership, traffic: None) -> None:
    week = reports.usage_report(partner=alice.partner, range_name="7d")
    month = reports.usage_report(partner=alice.partner, range_name="30d")
    assert len(week.buckets) == 28 and week.range.step == timedelta(hours=6)
    assert len(month.buckets) == 30 and month.buckets[0].start.hour == 0
    assert week.totals.requests == month.totals.requests == 115


def test_the_report_filters_by_key_and_product(
    alice: PartnerMembership, traffic: None, keys: tuple[ApiKey, ApiKey]
) -> None:
    one, two = keys
    assert reports.usage_report(partner=alice.partner, range_name="24h", key=one).totals.requests == 10
    assert reports.usage_report(partner=alice.partner, range_name="24h", key=two).totals.requests == 5
    assert reports.usage_report(partner=alice.partner, range_name="7d", product="appliances").totals.requests == 110


def test_the_report_never_includes_another_partners_usage(
    alice: PartnerMembership, bob: PartnerMembership, traffic: None
) -> None:
    factories.usage(bob.partner, hour(0), requests=7777)
    assert reports.usage_report(partner=alice.partner, range_name="24h").totals.requests == 15
    assert reports.usage_report(partner=bob.partner, range_name="24h").totals.requests == 7777


def test_windows_align_to_utc_steps() -> None:
    start, end = reports.window(reports.RANGES["30d"], NOW)
    assert end == datetime(2026, 3, 21, tzinfo=UTC) and start == datetime(2026, 2, 19, tzinfo=UTC)
    start, end = reports.window(reports.RANGES["7d"], NOW)
    assert end == datetime(2026, 3, 20, 18, tzinfo=UTC) and end - start == timedelta(days=7)


# -- the page and the CSV -------------------------------------------------------------------------
def test_the_usage_page(alice_client: Client, traffic: None) -> None:
    response = alice_client.get(reverse("portal:usage"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-stat="requests">15<' in body and 'data-stat="429">1<' in body and "35.7 ms" in body
    assert '<svg class="chart"' in body and 'role="img"' in body
    assert "Download CSV" in body
    week = alice_client.get(reverse("portal:usage"), {"range": "7d"}).content.decode()
    assert 'data-stat="requests">115<' in week


def test_the_usage_page_filters_by_key(alice_client: Client, traffic: None, keys: tuple[ApiKey, ApiKey]) -> None:
    body = alice_client.get(reverse("portal:usage"), {"key": keys[1].pk}).content.decode()
    assert 'data-stat="requests">5<' in body


def test_unknown_filters_are_404_or_ignored(alice_client: Client, traffic: None) -> None:
    assert alice_client.get(reverse("portal:usage"), {"key": "abc"}).status_code == 404
    assert alice_client.get(reverse("portal:usage"), {"key": "999999"}).status_code == 404
    assert alice_client.get(reverse("portal:usage"), {"product": "nope"}).status_code == 404
    assert alice_client.get(reverse("portal:usage"), {"range": "1y"}).context["report"].range.name == "24h"


def test_the_csv_has_one_row_per_interval(
    alice_client: Client, alice: PartnerMembership, traffic: None, keys: tuple[ApiKey, ApiKey]
) -> None:
    response = alice_client.get(reverse("portal:usage-csv"), {"range": "24h", "key": keys[0].pk})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="usage-acme-{keys[0].prefix}-24h.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 24
    assert rows[-1]["interval_start_utc"] == hour(0).isoformat()
    assert rows[-1]["requests"] == "10" and rows[-1]["status_429"] == "1" and rows[-1]["avg_latency_ms"] == "50.0"
    assert rows[0]["requests"] == "0" and rows[0]["avg_latency_ms"] == ""


# -- quotas ---------------------------------------------------------------------------------------
SET_COUNTERS: list[str] = []


@pytest.fixture(autouse=True)
def _forget_counters() -> Iterator[None]:
    # Ids come back after a rollback (SQLite): a later test's key must not inherit these counts.
    yield
    if SET_COUNTERS:
        configbus.redis_client().delete(*SET_COUNTERS)
        SET_COUNTERS.clear()


def set_counter(subject: str, product: str, period: str, value: int) -> None:
    key = reports.quota_counter_key(subject, product, period, timezone.now())
    SET_COUNTERS.append(key)
    configbus.redis_client().set(key, value, ex=600)


def test_quotas_come_from_the_limiters_counters(alice: PartnerMembership, keys: tuple[ApiKey, ApiKey]) -> None:
    one, two = keys
    set_counter(f"k{one.pk}", "appliances", "day", 250)
    set_counter(f"k{one.pk}", "appliances", "month", 5000)
    lines = reports.quota_lines(partner=alice.partner)
    assert [(line.key, line.product.slug) for line in lines] == [(one, "appliances"), (two, "appliances")]
    first = lines[0]
    assert first.live
    assert first.day is not None and (first.day.used, first.day.limit, first.day.remaining) == (250, 1000, 750)
    assert first.month is not None and (first.month.used, first.month.remaining, first.month.percent) == (
        5000,
        15000,
        25,
    )
    assert first.day.resets_at == hour(0).replace(hour=0) + timedelta(days=1)
    assert lines[1].day is not None and lines[1].day.used == 0
    # One key asked for: only its line.
    assert [line.key for line in reports.quota_lines(partner=alice.partner, key=two)] == [two]


def test_a_partner_scoped_plan_counts_all_keys_together(alice: PartnerMembership, product: ApiProduct) -> None:
    shared = factories.make_plan("team", scope="partner", quota_day=None, quota_month=100)
    factories.subscribe(alice.partner, product, shared)
    factories.make_key(alice.partner)
    set_counter(f"p{alice.partner.pk}", "appliances", "month", 100)
    [line] = reports.quota_lines(partner=alice.partner)
    assert line.key is None and line.day is None
    assert line.month is not None and line.month.remaining == 0
    assert line.forecast is not None and line.forecast.state == "exhausted"


def test_keys_limited_to_other_products_have_no_line(
    alice: PartnerMembership, product: ApiProduct, plan: Plan, manual_product: ApiProduct
) -> None:
    factories.subscribe(alice.partner, product, plan)
    factories.subscribe(alice.partner, manual_product, plan)
    energy_only = factories.make_key(alice.partner, "energy", [manual_product])
    lines = reports.quota_lines(partner=alice.partner)
    assert [(line.key, line.product.slug) for line in lines] == [(energy_only, "energy")]


def test_without_redis_quotas_come_from_the_hourly_rows(
    alice: PartnerMembership, keys: tuple[ApiKey, ApiKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, _two = keys
    factories.usage(alice.partner, hour(0), key=one, requests=30, status_429=5)

    class Down:
        def mget(self, *args: Any) -> None:
            raise redis.ConnectionError("down")

    monkeypatch.setattr(configbus, "redis_client", lambda: Down())
    line = reports.quota_lines(partner=alice.partner, key=one)[0]
    assert not line.live
    assert line.day is not None and line.day.used == 25  # refused requests use no quota


def test_the_forecast_uses_the_recent_rate(alice: PartnerMembership, keys: tuple[ApiKey, ApiKey]) -> None:
    one, _two = keys
    for n in range(1, 11):  # 10 hours of 1000 admitted requests: 1000/h
        factories.usage(alice.partner, hour(n), key=one, requests=1000)
    set_counter(f"k{one.pk}", "appliances", "month", 19_000)
    line = reports.quota_lines(partner=alice.partner, key=one)[0]
    assert line.forecast is not None
    # 1000 left at ≈ 1000 per hour: about an hour from now, unless the month ends first.
    if line.forecast.state == "runs_out":
        assert line.forecast.runs_out_at is not None
        assert abs(line.forecast.runs_out_at - (timezone.now() + timedelta(hours=1.1))) < timedelta(minutes=15)
    else:
        assert line.month is not None and line.month.resets_at - timezone.now() < timedelta(hours=1.2)


def test_the_usage_page_shows_quotas_and_the_forecast(alice_client: Client, keys: tuple[ApiKey, ApiKey]) -> None:
    set_counter(f"k{keys[0].pk}", "appliances", "day", 250)
    body = alice_client.get(reverse("portal:usage"), {"key": keys[0].pk}).content.decode()
    assert "<strong>250</strong> of 1,000 used · 750 left" in body
    assert "No recent use" in body


# -- plain helpers ----------------------------------------------------------------------------------
def test_forecast_arithmetic() -> None:
    month_end = datetime(2026, 4, 1, tzinfo=UTC)
    assert quota_runs_out(used=10, limit=10, rate_per_second=1, now=NOW, resets_at=month_end).state == "exhausted"
    assert quota_runs_out(used=0, limit=10, rate_per_second=0, now=NOW, resets_at=month_end).state == "idle"
    lasts = quota_runs_out(used=0, limit=10**9, rate_per_second=1, now=NOW, resets_at=month_end)
    assert lasts.state == "lasts"
    soon = quota_runs_out(used=0, limit=3600, rate_per_second=1, now=NOW, resets_at=month_end)
    assert soon.state == "runs_out" and soon.runs_out_at == NOW + timedelta(hours=1)
    assert "2026-03-20 15:25 UTC" in soon.text


def test_recent_rate_is_over_the_time_since_first_use() -> None:
    week = timedelta(days=7)
    assert recent_rate(requests=3600, first_use=NOW - timedelta(hours=2), now=NOW, window=week) == 0.5
    assert (
        recent_rate(requests=3600, first_use=NOW - timedelta(days=30), now=NOW, window=week)
        == 3600 / week.total_seconds()
    )
    assert recent_rate(requests=60, first_use=NOW - timedelta(minutes=1), now=NOW, window=week) == 60 / 3600
    assert recent_rate(requests=0, first_use=None, now=NOW, window=week) == 0


def test_the_chart_is_accessible_escaped_svg() -> None:
    svg = charts.bar_chart(
        ["<a>", "b"],
        [charts.Series("requests", "bar-requests", [3, 7])],
        title="T & t",
        description="two bars",
        chart_id="c",
    )
    assert svg.startswith('<svg class="chart"') and 'aria-labelledby="c-title c-desc"' in svg
    assert '<title id="c-title">T &amp; t</title>' in svg and "&lt;a&gt;" in svg and "<a>" not in svg
    assert svg.count("<rect") == 2
    assert ">10</text>" in svg  # the axis top is rounded up to a nice number
    assert charts.bar_chart([], [], title="empty", description="none").endswith("</svg>")
