"""Every change through the API, Django admin or a config apply is recorded: who, when, what
object, before and after, secrets redacted. The log is read-only, in Django admin too."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.db.models import JSONField, Model
from django.test import Client
from rest_framework.test import APIClient

from adminapi import services as token_services
from audit.context import acting
from audit.models import AuditLog
from audit.recorder import REDACTED_VALUE
from proxy import declarative, services
from proxy.models import ApiKey, Route
from tests import factories
from tests.adminapi.factories import sample_config

pytestmark = pytest.mark.django_db
V1 = "/api/admin/v1"


def admin_form_data(instance: Model) -> dict[str, str]:
    """The change form as Django admin would submit it unchanged (whatever fields the model has)."""
    data = {}
    for field in instance._meta.concrete_fields:
        if not field.editable or field.primary_key:
            continue
        value = field.value_from_object(instance)
        if isinstance(field, JSONField):
            data[field.name] = json.dumps(value)
        elif isinstance(value, bool):
            if value:
                data[field.name] = "on"
        else:
            data[field.name] = "" if value is None else str(value)
    return data


def entries(**filters: object) -> list[AuditLog]:
    return list(AuditLog.objects.filter(**filters).order_by("id"))


def test_an_api_change_records_who_what_before_and_after(api: APIClient) -> None:
    sample_config()
    AuditLog.objects.all().delete()

    api.patch(f"{V1}/routes/appliances-v1/", {"priority": 7}, format="json")

    [entry] = entries()
    assert (entry.source, entry.action, entry.actor_label, entry.actor.username) == ("api", "update", "alice", "alice")
    assert (entry.content_type.model, entry.object_repr) == ("route", "appliances-v1")
    assert entry.object_id == str(Route.objects.get(name="appliances-v1").pk)
    assert entry.changed_fields == ["priority"]
    assert (entry.before["priority"], entry.after["priority"]) == (0, 7)
    assert entry.remote_addr == "127.0.0.1"


def test_a_key_created_through_the_api_is_one_entry_and_never_holds_the_secret(api: APIClient) -> None:
    sample_config()
    AuditLog.objects.all().delete()

    response = api.post(
        f"{V1}/keys/", {"partner": "acme", "name": "alexa", "products": ["appliance-api"]}, format="json"
    )

    secret = response.json()["secret"]
    [entry] = entries(content_type__model="apikey")
    assert entry.action == "create" and entry.after["hashed"] == REDACTED_VALUE
    assert entry.after["products"] == [ApiKey.objects.get().products.get().pk]
    assert secret not in str(AuditLog.objects.values_list("before", "after"))


def test_revoking_a_key_records_the_change(api: APIClient) -> None:
    config = sample_config()
    key, _ = factories.api_key(partner=config["partner"], name="k")
    api.post(f"{V1}/keys/{key.prefix}/revoke/")
    [entry] = entries(source="api")
    assert entry.changed_fields == ["revoked_at"] and entry.before["revoked_at"] is None


def test_a_django_admin_change_is_recorded_as_its_user(alice: User) -> None:
    alice.is_superuser = True
    alice.save()
    upstream = factories.upstream(name="u", description="old")
    client = Client()
    client.force_login(alice)
    response = client.post(
        f"/admin/proxy/upstream/{upstream.pk}/change/",
        {
            **admin_form_data(upstream),
            "description": "new",
            "targets-TOTAL_FORMS": "1",
            "targets-INITIAL_FORMS": "0",
            "targets-MIN_NUM_FORMS": "0",
            "targets-MAX_NUM_FORMS": "1000",
            "targets-0-url": "http://127.0.0.1:9001",
            "targets-0-weight": "1",
            "targets-0-enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    changes = {(e.action, e.content_type.model): e for e in entries(source="admin")}
    assert set(changes) == {("update", "upstream"), ("create", "target")}
    assert changes[("update", "upstream")].actor_label == "alice"
    assert changes[("update", "upstream")].before["description"] == "old"

    client.post(f"/admin/proxy/upstream/{upstream.pk}/delete/", {"post": "yes"})
    deleted = {e.content_type.model for e in entries(source="admin", action="delete")}
    assert deleted == {"upstream", "target"}  # the cascade is recorded object by object


def test_saving_without_a_change_records_nothing(db: None) -> None:
    upstream = factories.upstream(name="u")
    count = AuditLog.objects.count()
    upstream.save()
    assert AuditLog.objects.count() == count


def test_config_applies_are_recorded_and_dry_runs_leave_nothing(alice: User) -> None:
    with acting("api", user=alice):
        declarative.apply("upstreams:\n  - name: svc\n", dry_run=True)
        assert not entries()
        declarative.apply("upstreams:\n  - name: svc\n")
    [entry] = entries()
    assert (entry.source, entry.actor, entry.action, entry.object_repr) == ("config", alice, "create", "svc")


def test_changes_outside_any_request_are_recorded_as_system(db: None) -> None:
    partner = factories.partner(slug="p", status="pending")
    services.partner_set_status(partner=partner, status="active")
    assert [(e.source, e.action, e.actor_label) for e in entries()] == [
        ("system", "create", ""),
        ("system", "update", ""),
    ]


def test_admin_tokens_are_audited_with_their_hash_redacted(alice: User) -> None:
    token, secret = token_services.admin_token_create(user=alice, name="ci")
    [entry] = entries(content_type__model="admintoken")
    assert entry.after["hashed"] == REDACTED_VALUE and secret not in str(entry.after)


def test_the_audit_log_is_read_only_and_filterable_in_django_admin(alice: User, api: APIClient) -> None:
    sample_config()
    api.patch(f"{V1}/routes/status/", {"priority": 3}, format="json")
    alice.is_superuser = True  # even a superuser cannot change or delete entries
    alice.save()
    client = Client()
    client.force_login(alice)
    entry = entries(source="api")[0]

    listing = client.get("/admin/audit/auditlog/?source__exact=api&action__exact=update")
    assert listing.status_code == 200 and "status" in listing.content.decode()
    detail = client.get(f"/admin/audit/auditlog/{entry.pk}/change/")
    assert detail.status_code == 200 and "priority" in detail.content.decode()
    assert client.get("/admin/audit/auditlog/add/").status_code == 403
    assert client.post(f"/admin/audit/auditlog/{entry.pk}/change/", {"object_repr": "x"}).status_code == 403
    assert client.post(f"/admin/audit/auditlog/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_the_audit_log_through_the_api_is_filterable(api: APIClient) -> None:
    sample_config()
    api.patch(f"{V1}/routes/status/", {"priority": 3}, format="json")
    listed = api.get(f"{V1}/audit/", {"model": "proxy.route", "source": "api", "actor": "alice"}).json()
    assert listed["count"] == 1 and listed["results"][0]["changed_fields"] == ["priority"]
    assert api.get(f"{V1}/audit/", {"from": "2999-01-01T00:00:00Z"}).json()["count"] == 0
    assert api.get(f"{V1}/audit/", {"from": "not a time"}).status_code == 400
    assert api.post(f"{V1}/audit/", {}, format="json").status_code == 405
