"""Who may use the admin API: staff by token or session, within their Django permissions.

alice operates everything; rita may only look; pete is logged in but not staff."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from adminapi import services
from adminapi.models import AdminToken
from proxy.models import Upstream
from tests import factories
from tests.adminapi.factories import client_for

pytestmark = pytest.mark.django_db
ROUTES = "/api/admin/v1/routes/"


def test_without_credentials_the_answer_is_401_with_a_challenge(db: None) -> None:
    response = APIClient().get(ROUTES)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer gwadm_aaaaaaaa_" + "x" * 40, "Bearer nonsense", "Token gwadm_x"])
def test_a_wrong_token_is_401(db: None, header: str) -> None:
    assert APIClient(HTTP_AUTHORIZATION=header).get(ROUTES).status_code == 401


def test_an_expired_token_is_401(alice: User) -> None:
    _, secret = services.admin_token_create(user=alice, name="old", expires_at=timezone.now() + timedelta(seconds=1))
    AdminToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}").get(ROUTES)
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_tokens_are_stored_hashed_and_record_their_last_use(alice: User) -> None:
    token, secret = services.admin_token_create(user=alice, name="ci")
    stored = AdminToken.objects.get(pk=token.pk)
    assert secret not in (stored.hashed, stored.prefix) and len(stored.hashed) == 64
    assert stored.last_used_at is None
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}").get(ROUTES).status_code == 200
    assert AdminToken.objects.get(pk=token.pk).last_used_at is not None


def test_a_token_of_an_inactive_user_is_refused(alice: User) -> None:
    client = client_for(alice)
    alice.is_active = False
    alice.save()
    assert client.get(ROUTES).status_code == 401


def test_pete_who_is_not_staff_gets_403_even_with_permissions(pete: User) -> None:
    assert client_for(pete).get(ROUTES).status_code == 403


def test_rita_the_read_only_operator_reads_everything_and_writes_nothing(readonly_api: APIClient) -> None:
    factories.upstream(name="u")
    for path in (
        "routes/",
        "upstreams/",
        "targets/",
        "products/",
        "plans/",
        "partners/",
        "subscriptions/",
        "keys/",
        "jwt-issuers/",
        "audit/",
        "usage/",
        "config/export",
        "config/schema",
    ):
        assert readonly_api.get(f"/api/admin/v1/{path}").status_code == 200, path
    assert readonly_api.post("/api/admin/v1/upstreams/", {"name": "new"}, format="json").status_code == 403
    assert readonly_api.patch("/api/admin/v1/upstreams/u/", {"description": "x"}, format="json").status_code == 403
    assert readonly_api.delete("/api/admin/v1/upstreams/u/").status_code == 403
    assert readonly_api.post("/api/admin/v1/config/apply", {"config": ""}, format="json").status_code == 403
    # A diff is an apply rolled back (it writes and locks): it needs the rights of an apply.
    assert readonly_api.post("/api/admin/v1/config/diff", {"config": ""}, format="json").status_code == 403
    assert Upstream.objects.get(name="u").description == ""


def test_a_staff_user_without_any_permission_gets_403(db: None) -> None:
    nobody = User.objects.create_user("nobody", password="x", is_staff=True)
    assert client_for(nobody).get(ROUTES).status_code == 403


def test_session_login_works_and_writes_need_the_csrf_token(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get(ROUTES).status_code == 200
    refused = client.post("/api/admin/v1/upstreams/", {"name": "x"}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    client.get("/admin/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    created = client.post(
        "/api/admin/v1/upstreams/", {"name": "x"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert created.status_code == 201


def test_the_schema_and_swagger_ui_are_for_staff_and_served_locally(alice: User, pete: User) -> None:
    assert APIClient().get("/api/admin/v1/schema/").status_code == 401
    assert client_for(pete).get("/api/admin/v1/schema/").status_code == 403
    schema = client_for(alice).get("/api/admin/v1/schema/?format=json")
    assert schema.status_code == 200 and "/api/admin/v1/routes/" in schema.json()["paths"]
    client = Client()
    client.force_login(alice)
    docs = client.get("/api/admin/v1/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    # Every asset is local: no absolute URL to another host (a random CSRF token may spell "cdn").
    assert "swagger-ui" in page and "/static/drf_spectacular_sidecar/" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_unknown_addresses_answer_json_404(api: APIClient) -> None:
    response = api.get("/api/admin/v1/no/such/thing")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
