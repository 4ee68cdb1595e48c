"""Edges found by the fuzz and authorization sweep (issue 19 item 7)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from proxy import services
from proxy.models import ApiKey, Partner, Subscription, Upstream
from tests.adminapi.factories import client_for, sample_config

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api/admin/v1/%0a",
        "/api/admin/v1/routes%0A/",
        "/api/admin/v1/nothing/here%0d%0a",
        "/api/admin/v1/config/explain%0a",
        "/api/admin/v1/explain%0a",
    ],
)
def test_every_unknown_path_under_the_prefix_is_a_json_404(api: APIClient, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


@pytest.fixture
def dora(db: None) -> User:
    """May delete partners, and nothing else of theirs."""
    user = User.objects.create_user("dora", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="proxy", codename__in=["view_partner", "delete_partner"])
    )
    return user


def test_deleting_a_partner_with_keys_needs_the_key_permission(dora: User, api: APIClient) -> None:
    config = sample_config()
    services.api_key_create(partner=config["partner"], name="alexa")
    client = client_for(dora)

    refused = client.delete("/api/admin/v1/partners/acme/")

    assert refused.status_code == 403
    detail = refused.json()["detail"]
    assert "1 API key(s)" in detail and "proxy.delete_apikey" in detail and "1 subscription(s)" in detail
    assert ApiKey.objects.count() == 1 and Subscription.objects.count() == 1
    assert client.delete(f"/api/admin/v1/keys/{ApiKey.objects.get().prefix}/").status_code == 403

    # With the permissions (alice), the cascade is allowed; a partner with nothing is dora's to delete.
    assert api.delete("/api/admin/v1/partners/acme/").status_code == 204
    assert not ApiKey.objects.exists()
    Partner.objects.create(name="Empty", slug="empty")
    assert client.delete("/api/admin/v1/partners/empty/").status_code == 204


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN"])
def test_yaml_infinity_and_nan_are_refused_by_validation(api: APIClient, value: str) -> None:
    text = f"upstreams:\n  - name: u\n    connect_timeout: {value}\n"
    response = api.post("/api/admin/v1/config/apply", {"config": text}, format="json")
    assert response.status_code == 400
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert any(
        e["path"] == "upstreams[0].connect_timeout"
        and ".inf and .nan are not allowed" in e["message"]
        and e["line"] == 3
        for e in errors
    ), errors
    assert "INSERT" not in str(errors) and "UPDATE" not in str(errors)
    assert not Upstream.objects.exists()


def test_infinity_inside_a_json_field_is_refused_too(api: APIClient) -> None:
    sample_config()
    text = api.get("/api/admin/v1/config/export").json()["config"]
    text = text.replace("products:\n", "products:\n  - slug: spec\n    name: Spec\n    openapi: {x: .inf}\n", 1)
    response = api.post("/api/admin/v1/config/apply", {"config": text}, format="json")
    assert response.status_code == 400
    assert any(e["path"] == "products[0].openapi.x" for e in response.json()["errors"]), response.json()
