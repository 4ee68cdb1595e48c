"""Every admin API write and its audit entries commit together: with the audit insert made to
fail (a real database trigger), the write answers 503 with a JSON body and leaves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from audit.models import AuditLog
from proxy.models import ApiKey, ApiProduct, Plan, Route
from tests.adminapi.factories import sample_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def config() -> dict[str, Any]:
    return sample_config()


@pytest.fixture
def audit_refuses_inserts() -> Iterator[None]:
    table = AuditLog._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'audit insert refused by the test'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(f"CREATE TRIGGER refuse_audit BEFORE INSERT ON {table} EXECUTE FUNCTION refuse_audit()")
        else:
            cursor.execute(
                f"CREATE TRIGGER refuse_audit BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'audit insert refused by the test'); END"
            )
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER refuse_audit{' ON ' + table if connection.vendor == 'postgresql' else ''}")


def _refused(response: Any) -> None:
    assert response.status_code in (409, 503), response.content
    detail = response.json()["detail"]
    # PostgreSQL's trigger error is a database error (503, "nothing was changed"); SQLite's
    # RAISE(ABORT) is an integrity error (409). Either way: a JSON answer, no SQL, nothing kept.
    assert detail and "INSERT" not in detail and "audit insert refused" not in detail


def test_a_create_without_its_audit_entry_is_not_saved(api: APIClient, audit_refuses_inserts: None) -> None:
    _refused(api.post("/api/admin/v1/products/", {"name": "Ghost", "slug": "ghost"}, format="json"))
    assert not ApiProduct.objects.filter(slug="ghost").exists()


@pytest.fixture
def spare() -> Plan:
    return Plan.objects.create(name="Spare", slug="spare")


def test_updates_deletes_and_key_actions_roll_back_with_their_audit_entry(
    api: APIClient, config: dict[str, Any], spare: Plan, audit_refuses_inserts: None
) -> None:
    _refused(api.patch("/api/admin/v1/routes/status/", {"path": "/health"}, format="json"))
    assert Route.objects.get(name="status").path == "/status"
    _refused(api.delete("/api/admin/v1/plans/spare/"))
    assert Plan.objects.filter(slug="spare").exists()
    _refused(api.patch("/api/admin/v1/partners/acme/", {"status": "suspended"}, format="json"))
    assert config["partner"].__class__.objects.get(slug="acme").status == "active"


def test_config_apply_and_key_creation_roll_back_whole(
    api: APIClient, config: dict[str, Any], audit_refuses_inserts: None
) -> None:
    _refused(api.post("/api/admin/v1/keys/", {"partner": "acme", "name": "k"}, format="json"))
    assert not ApiKey.objects.exists()
    applied = api.post(
        "/api/admin/v1/config/apply", {"config": "plans:\n  - slug: new\n    name: New\n"}, format="json"
    )
    # PostgreSQL: 503 (a database error); SQLite's trigger is an integrity error, which apply
    # reports against the file's line (400). Either way the whole apply is rolled back.
    assert applied.status_code in (400, 409, 503), applied.content
    assert not Plan.objects.filter(slug="new").exists()
