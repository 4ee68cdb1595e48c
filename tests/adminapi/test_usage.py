"""GET /api/admin/v1/usage/: filters partner/key/product/route/from/to, hour or day."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from proxy.models import Partner, UsageHourly
from tests import factories
from tests.adminapi.factories import sample_config

pytestmark = pytest.mark.django_db
USAGE = "/api/admin/v1/usage/"


@pytest.fixture
def traffic(db: None) -> dict[str, Any]:
    config = sample_config()
    acme = config["partner"]
    beta = factories.partner(slug="beta")
    key, _ = factories.api_key(partner=acme, name="k1")

    def row(partner: Partner, hour: datetime, requests: int, **extra: Any) -> None:
        UsageHourly.objects.create(partner=partner, hour=hour, requests=requests, status_2xx=requests, **extra)

    row(
        acme,
        datetime(2026, 3, 1, 10, tzinfo=UTC),
        10,
        key=key,
        route=config["route"],
        product="appliance-api",
        latency_ms_sum=100,
    )
    row(acme, datetime(2026, 3, 1, 10, tzinfo=UTC), 5, key=key, route=config["route"], product="appliance-api")
    row(acme, datetime(2026, 3, 1, 11, tzinfo=UTC), 7, route=config["public"])
    row(beta, datetime(2026, 3, 2, 9, tzinfo=UTC), 3, status_429=1, product="appliance-api")
    return {"key": key}


def query(api: APIClient, **params: str) -> dict[str, Any]:
    response = api.get(USAGE, {"from": "2026-03-01T00:00:00Z", "to": "2026-03-03T00:00:00Z", **params})
    assert response.status_code == 200, response.json()
    return dict(response.json())


def test_hourly_usage_sums_every_row_of_the_hour(api: APIClient, traffic: dict[str, Any]) -> None:
    body = query(api)
    assert [(r["period"], r["requests"]) for r in body["results"]] == [
        ("2026-03-01T10:00:00Z", 15),
        ("2026-03-01T11:00:00Z", 7),
        ("2026-03-02T09:00:00Z", 3),
    ]
    assert body["totals"]["requests"] == 25 and body["totals"]["status_429"] == 1
    assert body["results"][0]["latency_ms_avg"] == pytest.approx(100 / 15, abs=0.01)


def test_daily_usage_grouped_by_partner(api: APIClient, traffic: dict[str, Any]) -> None:
    body = query(api, granularity="day", group_by="partner")
    assert [(r["period"], r["partner"], r["requests"]) for r in body["results"]] == [
        ("2026-03-01T00:00:00Z", "acme", 22),
        ("2026-03-02T00:00:00Z", "beta", 3),
    ]


@pytest.mark.parametrize(
    ("params", "total"),
    [
        ({"partner": "beta"}, 3),
        ({"route": "status"}, 7),
        ({"product": "appliance-api"}, 18),
        ({"to": "2026-03-01T11:00:00Z"}, 15),
        ({"from": "2026-03-02T00:00:00Z"}, 3),
    ],
)
def test_filters(api: APIClient, traffic: dict[str, Any], params: dict[str, str], total: int) -> None:
    assert query(api, **params)["totals"]["requests"] == total


def test_filter_by_key_prefix(api: APIClient, traffic: dict[str, Any]) -> None:
    assert query(api, key=traffic["key"].prefix, group_by="key,route")["results"] == [
        {
            "period": "2026-03-01T10:00:00Z",
            "key": traffic["key"].prefix,
            "route": "appliances-v1",
            "requests": 15,
            "status_2xx": 15,
            "status_3xx": 0,
            "status_4xx": 0,
            "status_5xx": 0,
            "status_429": 0,
            "latency_ms_avg": pytest.approx(6.67, abs=0.01),
        }
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"granularity": "week"}, "granularity"),
        ({"partner": "nobody"}, "partner"),
        ({"group_by": "color"}, "group_by"),
        ({"from": "2026-03-05T00:00:00Z"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2025-01-01T00:00:00Z", "granularity": "hour"}, "from"),
    ],
)
def test_bad_queries_are_400_naming_the_parameter(
    api: APIClient, traffic: dict[str, Any], params: dict[str, str], field: str
) -> None:
    response = api.get(USAGE, {"to": "2026-03-03T00:00:00Z", **params})
    assert response.status_code == 400 and field in response.json()
