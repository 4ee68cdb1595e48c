"""POST /api/admin/v1/explain and the "Test a request" page: which route, why, what else came
close, the authentication, every limit with what remains, the target; nothing forwarded or
counted. The snapshot is read from committed data, as the gateways read it."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from proxy import services
from proxy.models import Route
from tests import factories
from tests.adminapi.factories import client_for, sample_config

pytestmark = pytest.mark.django_db(transaction=True)
EXPLAIN = "/api/admin/v1/explain"


@pytest.fixture
def config(db: None) -> dict[str, Any]:
    config = sample_config()
    key, secret = factories.api_key(partner=config["partner"], name="alexa")
    return {**config, "key": key, "secret": secret}


def explain(api: APIClient, **body: Any) -> dict[str, Any]:
    response = api.post(EXPLAIN, body, format="json")
    assert response.status_code == 200, response.json()
    return dict(response.json())


def test_a_matching_request_names_its_route_and_why(api: APIClient, config: dict[str, Any]) -> None:
    answer = explain(
        api,
        method="GET",
        url="http://api.example.com/api/v1/appliances?limit=5",
        headers={"X-API-Key": config["secret"]},
    )

    assert answer["verdict"] == {
        "status": 200,
        "code": "forwarded",
        "phase": "forward",
        "would_forward": True,
        "message": "Would forward to http://127.0.0.1:9/api/v1/appliances",
    }
    assert answer["route"]["name"] == "appliances-v1" and answer["route"]["tail"] == "/appliances"
    assert [(c["matcher"], c["ok"]) for c in answer["why"]] == [
        ("protocol", True),
        ("host", True),
        ("path", True),
        ("method", True),
    ]
    assert answer["auth"]["ok"] and answer["auth"]["partner"] == "acme"
    assert answer["auth"]["key"] == config["key"].prefix and answer["auth"]["plan"] == "gold"
    assert "X-API-Key" in answer["auth"]["credential"]
    assert answer["upstream"]["url"] == "http://127.0.0.1:9/api/v1/appliances?limit=5"
    assert [(limit["name"], limit["limit"], limit["remaining"]) for limit in answer["limits"]] == [
        ("plan:minute", 60, 60),
        ("plan:day", 1000, 1000),
    ]
    assert config["secret"] not in str(answer)


def test_the_nearest_routes_name_the_matcher_that_failed(api: APIClient, config: dict[str, Any]) -> None:
    upstream = config["upstream"]
    factories.route(
        upstream=upstream,
        name="v2-header",
        path="/api/v1",
        priority=10,
        auth="public",
        headers=[{"name": "X-API-Version", "match": "exact", "value": "2"}],
    )
    factories.route(upstream=upstream, name="other-host", path="/api/v1", hosts=["partner.example.com"], auth="public")
    factories.route(upstream=upstream, name="delete-only", path="/api/v1/appliances", methods=["DELETE"], auth="public")
    factories.route(upstream=upstream, name="switched-off", path="/api/v1/appliances", enabled=False, auth="public")

    answer = explain(
        api,
        method="GET",
        url="http://api.example.com/api/v1/appliances",
        headers={"X-API-Version": "1", "X-API-Key": config["secret"]},
    )

    assert answer["route"]["name"] == "appliances-v1"
    failed = {miss["name"]: [(c["matcher"], c["detail"]) for c in miss["failed"]] for miss in answer["nearest"]}
    assert failed["v2-header"] == [("header:x-api-version", "header x-api-version must be exact '2'; got '1'")]
    assert [m for m, _ in failed["other-host"]] == ["host"]
    assert failed["delete-only"] == [("method", "GET not in ['DELETE']")]
    assert failed["switched-off"] == [("enabled", "the route is disabled")]
    assert [m for m, _ in failed["status"]] == ["path"]


def test_a_route_that_matches_but_loses_on_precedence_is_nearest(api: APIClient, config: dict[str, Any]) -> None:
    factories.route(upstream=config["upstream"], name="catch-all", path="/", auth="public")
    answer = explain(api, method="GET", url="http://x/api/v1/a", headers={"X-API-Key": config["secret"]})
    assert answer["route"]["name"] == "appliances-v1"
    assert answer["nearest"][0]["name"] == "catch-all"
    assert answer["nearest"][0]["failed"][0]["matcher"] == "precedence"


def test_no_route_and_wrong_method_give_the_gateways_answers(api: APIClient, config: dict[str, Any]) -> None:
    missing = explain(api, method="GET", url="http://x/nowhere")
    assert missing["verdict"]["status"] == 404 and missing["route"] is None and missing["nearest"]
    wrong = explain(api, method="DELETE", url="http://x/api/v1/a")
    assert wrong["verdict"]["status"] == 405 and "Allowed: GET, POST." in wrong["verdict"]["message"]
    climbing = explain(api, method="GET", url="http://x/../../etc/passwd")
    assert climbing["verdict"]["status"] == 400


def test_authentication_failures_are_the_gateways(api: APIClient, config: dict[str, Any]) -> None:
    none = explain(api, method="GET", url="http://x/api/v1/a")
    assert (none["verdict"]["status"], none["auth"]["code"]) == (401, "unauthorized")
    assert none["limits"] == [] and none["upstream"]["name"] == "appliances"
    services.partner_set_status(partner=config["partner"], status="suspended")
    suspended = explain(
        api, method="GET", url="http://x/api/v1/a", headers={"Authorization": f"Bearer {config['secret']}"}
    )
    assert (suspended["verdict"]["status"], suspended["verdict"]["code"]) == (403, "partner_suspended")
    services.api_key_revoke(key=config["key"])
    revoked = explain(api, method="GET", url="http://x/api/v1/a", headers={"X-API-Key": config["secret"]})
    assert revoked["verdict"]["status"] == 401


def test_acting_as_a_key_needs_no_secret(api: APIClient, config: dict[str, Any]) -> None:
    answer = explain(api, method="GET", url="http://x/api/v1/a", as_key=config["key"].prefix)
    assert answer["verdict"]["status"] == 200
    assert answer["auth"]["simulated_as"] == f"key {config['key'].prefix}" and answer["auth"]["plan"] == "gold"
    assert explain(api, method="GET", url="http://x/api/v1/a", as_key="zzzzzzzz")["verdict"]["status"] == 401
    as_partner = explain(api, method="GET", url="http://x/api/v1/a", as_partner="acme")
    assert as_partner["auth"]["method"] == "jwt" and [limit["name"] for limit in as_partner["limits"]] == [
        "plan:minute",
        "plan:day",
    ]


def test_limits_show_what_remains_and_explaining_consumes_nothing(
    api: APIClient, config: dict[str, Any], redis_client: redis.Redis
) -> None:
    body = {"method": "GET", "url": "http://x/api/v1/a", "headers": {"X-API-Key": config["secret"]}}
    keys = {limit["name"]: limit["redis_key"] for limit in explain(api, **body)["limits"]}
    redis_client.set(keys["plan:day"], 997)
    bucket = int(time.time() * 1000) // 1000
    redis_client.hset(keys["plan:minute"], str(bucket), 20)
    redis_client.hset(keys["plan:minute"], str(bucket - 120), 50)  # long out of the window

    for _ in range(3):
        answer = explain(api, **body)
        limits = {limit["name"]: limit for limit in answer["limits"]}
        assert (limits["plan:day"]["used"], limits["plan:day"]["remaining"]) == (997, 3)
        assert (limits["plan:minute"]["used"], limits["plan:minute"]["remaining"]) == (20, 40)
    assert int(redis_client.get(keys["plan:day"]) or 0) == 997
    assert redis_client.hget(keys["plan:minute"], str(bucket - 120)) == b"50"  # read, not cleaned up

    redis_client.set(keys["plan:day"], 1000)
    refused = explain(api, **body)
    assert refused["verdict"]["status"] == 429 and refused["verdict"]["code"] == "quota_exceeded"
    assert {limit["name"]: limit["would_refuse"] for limit in refused["limits"]} == {
        "plan:minute": False,
        "plan:day": True,
    }


def test_public_routes_are_limited_per_client_ip(api: APIClient, config: dict[str, Any]) -> None:
    answer = explain(api, method="GET", url="http://x/status", client_ip="203.0.113.7")
    assert answer["auth"]["required"] == "public"
    assert [(limit["name"], limit["limit"]) for limit in answer["limits"]] == [("route:second", 5)]
    assert answer["limits"][0]["redis_key"].endswith(f"rl:route{config['public'].pk}:ip203.0.113.7:second")


def test_a_websocket_only_route_does_not_match_plain_http(api: APIClient, config: dict[str, Any]) -> None:
    factories.route(upstream=config["upstream"], name="events", path="/events", protocols=["websocket"], auth="public")
    http = explain(api, method="GET", url="http://x/events")
    assert http["verdict"]["status"] == 404
    assert [c["matcher"] for c in next(m for m in http["nearest"] if m["name"] == "events")["failed"]] == ["protocol"]
    socket = explain(api, method="GET", url="ws://x/events", protocol="websocket")
    assert socket["route"]["name"] == "events" and socket["verdict"]["would_forward"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "api/v1"}, "url"),
        ({"url": "http://x/a b"}, "url"),
        ({"url": "/a", "method": "GE T"}, "method"),
        ({"url": "/a", "headers": {"Bad Name": "x"}}, "headers"),
        ({"url": "/a", "client_ip": "nope"}, "client_ip"),
        ({"url": "/a", "as_key": "abcdefgh", "as_partner": "acme"}, "non_field_errors"),
        ({}, "url"),
    ],
)
def test_malformed_questions_are_400(api: APIClient, body: dict[str, Any], field: str) -> None:
    response = api.post(EXPLAIN, body, format="json")
    assert response.status_code == 400 and field in response.json()


def test_reading_needs_the_route_view_permission(rita: User, pete: User, config: dict[str, Any]) -> None:
    assert client_for(rita).post(EXPLAIN, {"url": "/status"}, format="json").status_code == 200
    assert client_for(pete).post(EXPLAIN, {"url": "/status"}, format="json").status_code == 403


def test_the_admin_test_a_request_page(alice: User, pete: User, config: dict[str, Any]) -> None:
    client = Client()
    client.force_login(alice)
    index = client.get("/admin/").content.decode()
    assert "Test a request" in index and "/admin/adminapi/requesttest/" in index
    assert client.get("/admin/adminapi/requesttest/").status_code == 200
    page = client.post(
        "/admin/adminapi/requesttest/",
        {
            "method": "GET",
            "url": "http://x/api/v1/appliances",
            "headers": f"X-API-Key: {config['secret']}\n",
            "protocol": "http",
            "client_ip": "127.0.0.1",
            "as_key": "",
            "as_partner": "",
        },
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "200 forwarded" in html and "appliances-v1" in html and 'id="limits"' in html
    assert config["secret"] not in html.replace(f"X-API-Key: {config['secret']}", "")
    outsider = Client()
    outsider.force_login(User.objects.create_user("staff-no-perms", password="x", is_staff=True))
    assert outsider.get("/admin/adminapi/requesttest/").status_code == 403


def route_has(field: str) -> bool:
    return field in {f.name for f in Route._meta.get_fields()}


@pytest.mark.skipif(not route_has("upstream_rules"), reason="routes have no traffic policy in this checkout")
def test_upstream_rules_and_ip_rules_are_explained(api: APIClient, config: dict[str, Any]) -> None:
    factories.upstream(name="canary", targets=["http://127.0.0.1:10"])
    route = Route.objects.get(name="appliances-v1")
    route.upstream_rules = [{"header": "X-Canary", "value": "1", "upstream": "canary"}]
    route.ip_deny = ["198.51.100.0/24"]
    route.save()
    body = {"method": "GET", "url": "http://x/api/v1/a", "headers": {"X-API-Key": config["secret"]}}

    assert explain(api, **body)["upstream"]["name"] == "appliances"
    canaried = explain(api, **{**body, "headers": {**body["headers"], "X-Canary": "1"}})
    assert canaried["upstream"]["name"] == "canary" and canaried["upstream"]["target"] == "http://127.0.0.1:10"
    assert "upstream rule" in canaried["upstream"]["note"]
    denied = explain(api, **body, client_ip="198.51.100.7")
    assert (denied["verdict"]["status"], denied["verdict"]["code"]) == (403, "ip_denied")
    assert denied["why"][-1] == {
        "matcher": "client_ip",
        "ok": False,
        "detail": "198.51.100.7 fails the route's IP allow/deny rules",
    }
