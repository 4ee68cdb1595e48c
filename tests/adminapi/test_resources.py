"""CRUD of the configuration through the admin API: validation, side effects, listings."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from proxy import services
from proxy.models import ApiKey, Partner, Route, Subscription, Upstream
from tests import factories
from tests.adminapi.factories import sample_config

pytestmark = pytest.mark.django_db
V1 = "/api/admin/v1"


@pytest.fixture
def config(db: None) -> dict[str, Any]:
    return sample_config()


def test_an_upstream_with_targets_and_a_route_are_created(api: APIClient) -> None:
    assert api.post(f"{V1}/upstreams/", {"name": "svc", "read_timeout": 5}, format="json").status_code == 201
    target = api.post(f"{V1}/targets/", {"upstream": "svc", "url": "http://127.0.0.1:9001", "weight": 2}, format="json")
    assert target.status_code == 201
    route = api.post(
        f"{V1}/routes/",
        {
            "name": "svc",
            "upstream": "svc",
            "path": "/svc/",
            "methods": ["get"],
            "hosts": ["API.Example.com"],
            "auth": "public",
        },
        format="json",
    )
    assert route.status_code == 201, route.json()
    # Normalised as the model normalises them in Django admin.
    assert route.json()["path"] == "/svc" and route.json()["methods"] == ["GET"]
    assert route.json()["hosts"] == ["api.example.com"]
    upstream = api.get(f"{V1}/upstreams/svc/").json()
    assert upstream["targets"] == [
        {"id": target.json()["id"], "url": "http://127.0.0.1:9001", "weight": 2, "enabled": True}
    ]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"path_type": "regex", "path": "^/items/(?P<id>[0-9+$"}, "path", "does not compile"),
        ({"path": "items"}, "path", "must start with '/'"),
        ({"hosts": ["api.*.com"]}, "hosts", "wildcard hosts"),
        ({"rewrite": "/v2/{id}"}, "rewrite", "does not capture"),
        ({"headers": [{"name": "X-A", "match": "regex", "value": "("}]}, "headers", "does not compile"),
        ({"headers": [{"name": "X-A", "match": "fuzzy"}]}, "headers", "valid choice"),
        ({"methods": "GET"}, "methods", "list"),
        ({"protocols": ["gopher"]}, "protocols", "valid choice"),
        ({"upstream": "nowhere"}, "upstream", "does not exist"),
        ({"limit_per_second": 0}, "limit_per_second", "greater than or equal to 1"),
        ({"priority": 2**40}, "priority", "less than or equal to"),
    ],
)
def test_invalid_routes_are_400_with_the_field_named(
    api: APIClient, config: dict[str, Any], fields: dict[str, Any], field: str, message: str
) -> None:
    response = api.post(f"{V1}/routes/", {"name": "bad", "upstream": "appliances", **fields}, format="json")
    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert not Route.objects.filter(name="bad").exists()


def test_a_route_conflicting_with_another_is_refused_as_a_whole(api: APIClient, config: dict[str, Any]) -> None:
    response = api.post(
        f"{V1}/routes/",
        {"name": "dup", "upstream": "appliances", "path": "/api/v1/", "methods": ["POST"], "product": "appliance-api"},
        format="json",
    )
    assert response.status_code == 400
    assert "already matches" in response.json()["non_field_errors"][0]


def test_a_route_is_updated_partially_and_deleted(api: APIClient, config: dict[str, Any]) -> None:
    response = api.patch(f"{V1}/routes/appliances-v1/", {"priority": 5, "enabled": False}, format="json")
    assert response.status_code == 200 and response.json()["priority"] == 5
    assert Route.objects.get(name="appliances-v1").enabled is False
    assert api.delete(f"{V1}/routes/appliances-v1/").status_code == 204
    assert api.get(f"{V1}/routes/appliances-v1/").status_code == 404


def test_deleting_an_upstream_that_routes_use_is_a_409(api: APIClient, config: dict[str, Any]) -> None:
    response = api.delete(f"{V1}/upstreams/appliances/")
    assert response.status_code == 409
    assert "appliances-v1" in response.json()["detail"]
    assert Upstream.objects.filter(name="appliances").exists()


def test_listings_are_paginated_filtered_searched_and_ordered(api: APIClient, config: dict[str, Any]) -> None:
    for n in range(3):
        factories.route(upstream=config["upstream"], name=f"extra-{n}", path=f"/extra/{n}", priority=n)
    page = api.get(f"{V1}/routes/?page_size=2").json()
    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
    assert [r["name"] for r in api.get(f"{V1}/routes/?ordering=-priority&name__icontains=extra").json()["results"]] == [
        "extra-2",
        "extra-1",
        "extra-0",
    ]
    assert [r["name"] for r in api.get(f"{V1}/routes/?auth=public").json()["results"]] == ["status"]
    assert [r["name"] for r in api.get(f"{V1}/routes/?product=appliance-api").json()["results"]] == ["appliances-v1"]
    assert api.get(f"{V1}/routes/?search=extra/1").json()["count"] == 1
    assert api.get(f"{V1}/routes/?auth=nonsense").status_code == 400
    assert api.get(f"{V1}/routes/?page=99").status_code == 404


def test_a_key_is_created_with_its_secret_shown_once(api: APIClient, config: dict[str, Any]) -> None:
    response = api.post(
        f"{V1}/keys/", {"partner": "acme", "name": "alexa", "products": ["appliance-api"]}, format="json"
    )
    assert response.status_code == 201
    secret = response.json()["secret"]
    prefix = response.json()["prefix"]
    assert secret.startswith(f"gw_{prefix}_")
    key = services.api_key_find(secret)
    assert key is not None and key.prefix == prefix
    assert [p.slug for p in key.products.all()] == ["appliance-api"]
    # Never readable again: not in the detail, the listing, or the database.
    assert "secret" not in api.get(f"{V1}/keys/{prefix}/").json()
    assert secret not in api.get(f"{V1}/keys/").content.decode()
    assert secret not in str(ApiKey.objects.filter(prefix=prefix).values().get())


def test_keys_are_revoked_and_rotated(api: APIClient, config: dict[str, Any]) -> None:
    key, _ = factories.api_key(partner=config["partner"], name="old")
    rotated = api.post(f"{V1}/keys/{key.prefix}/rotate/", {"grace_seconds": 60}, format="json")
    assert rotated.status_code == 201 and rotated.json()["secret"]
    key.refresh_from_db()
    assert key.expires_at is not None
    revoked = api.post(f"{V1}/keys/{key.prefix}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert api.post(f"{V1}/keys/{key.prefix}/rotate/", {}, format="json").status_code == 400
    assert [k["prefix"] for k in api.get(f"{V1}/keys/?status=revoked").json()["results"]] == [key.prefix]


def test_a_key_cannot_move_to_another_partner(api: APIClient, config: dict[str, Any]) -> None:
    other = factories.partner(slug="other")
    key, _ = factories.api_key(partner=config["partner"], name="k")
    response = api.patch(f"{V1}/keys/{key.prefix}/", {"partner": other.slug}, format="json")
    assert response.status_code == 400 and "cannot change" in response.json()["partner"][0]


def test_a_key_with_an_expiry_in_the_past_is_refused(api: APIClient, config: dict[str, Any]) -> None:
    response = api.post(
        f"{V1}/keys/", {"partner": "acme", "name": "k", "expires_at": "2001-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400 and "future" in response.json()["expires_at"][0]


def test_partner_status_and_subscriptions(api: APIClient, config: dict[str, Any]) -> None:
    response = api.patch(f"{V1}/partners/acme/", {"status": "suspended"}, format="json")
    assert response.status_code == 200 and Partner.objects.get(slug="acme").status == "suspended"
    assert api.patch(f"{V1}/partners/acme/", {"status": "gone"}, format="json").status_code == 400
    api.post(f"{V1}/plans/", {"name": "Free", "slug": "free", "quota_day": 10}, format="json")
    duplicate = api.post(
        f"{V1}/subscriptions/", {"partner": "acme", "product": "appliance-api", "plan": "free"}, format="json"
    )
    assert duplicate.status_code == 400
    sub = Subscription.objects.get(partner__slug="acme")
    assert api.patch(f"{V1}/subscriptions/{sub.pk}/", {"plan": "free"}, format="json").status_code == 200
    assert Subscription.objects.get(pk=sub.pk).plan.slug == "free"
    listed = api.get(f"{V1}/subscriptions/?partner=acme&plan=free").json()
    assert listed["count"] == 1 and listed["results"][0]["product"] == "appliance-api"


def test_deleting_a_plan_in_use_is_a_409(api: APIClient, config: dict[str, Any]) -> None:
    assert api.delete(f"{V1}/plans/gold/").status_code == 409


@pytest.mark.parametrize("value", ["\x00", "a\x00b"])
def test_text_the_database_cannot_store_is_a_400_or_404_never_a_500(
    api: APIClient, config: dict[str, Any], value: str
) -> None:
    assert api.post(f"{V1}/routes/", {"name": "r", "upstream": value}, format="json").status_code == 400
    assert (
        api.post(f"{V1}/products/", {"name": "P", "slug": "p", "openapi": {"k": value}}, format="json").status_code
        == 400
    )
    assert api.get(f"{V1}/routes/{value}/").status_code == 404
    assert api.get(f"{V1}/routes/", {"upstream": value}).status_code == 400


def test_malformed_json_is_a_400(api: APIClient) -> None:
    response = api.generic("POST", f"{V1}/upstreams/", "{not json", content_type="application/json")
    assert response.status_code == 400
