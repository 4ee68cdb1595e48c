"""Declarative configuration through the admin API: the same export, diff and apply."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audit.models import AuditLog
from proxy.models import Route
from tests.adminapi.factories import empty_configuration, rich_config

pytestmark = pytest.mark.django_db
V1 = "/api/admin/v1/config"


def test_export_then_apply_round_trips_through_the_api(api: APIClient) -> None:
    rich_config()
    exported = api.get(f"{V1}/export").json()["config"]
    empty_configuration()

    applied = api.post(f"{V1}/apply", {"config": exported}, format="json")

    assert applied.status_code == 200 and applied.json()["applied"] is True
    assert applied.json()["counts"]["create"] > 10
    assert api.get(f"{V1}/export").json()["config"] == exported
    again = api.post(f"{V1}/apply", {"config": exported}, format="json").json()
    assert again["changes"] == [] and again["summary"] == "No changes."


def test_export_as_raw_yaml(api: APIClient) -> None:
    rich_config()
    response = api.get(f"{V1}/export", HTTP_ACCEPT="application/yaml")
    assert response["Content-Type"].startswith("application/yaml")
    assert response.content.decode().startswith("# apigw gateway configuration")


def test_diff_reports_and_changes_nothing(api: APIClient) -> None:
    rich_config()
    text = api.get(f"{V1}/export").json()["config"].replace("path: /status", "path: /health")
    diff = api.post(f"{V1}/diff", {"config": text}, format="json").json()
    assert diff["applied"] is False
    assert diff["changes"] == [
        {
            "action": "update",
            "kind": "route",
            "name": "status",
            "note": "",
            "fields": {"path": {"old": "/status", "new": "/health"}},
        }
    ]
    assert Route.objects.get(name="status").path == "/status"


def test_a_raw_yaml_body_with_options_in_the_query(api: APIClient) -> None:
    rich_config()
    response = api.generic(
        "POST", f"{V1}/apply?dry_run=true&prune=true", "upstreams: []\n", content_type="application/yaml"
    )
    assert response.status_code == 400  # pruning every upstream: routes still use them
    assert "still use it" in str(response.json()["errors"])
    response = api.generic(
        "POST", f"{V1}/apply?dry_run=true", "upstreams:\n  - name: extra\n", content_type="application/yaml"
    )
    assert response.status_code == 200 and response.json()["summary"].startswith("Plan: 1 to create")


def test_an_invalid_file_is_a_400_with_lines_and_changes_nothing(api: APIClient) -> None:
    before = AuditLog.objects.count()
    response = api.post(f"{V1}/apply", {"config": "upstreams:\n  - name: u\n    colour: red\n"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"line": 3, "path": "upstreams[0].colour", "message": response.json()["errors"][0]["message"]}]
    }
    assert AuditLog.objects.count() == before


def test_applies_through_the_api_are_audited_as_the_caller(api: APIClient) -> None:
    api.post(f"{V1}/apply", {"config": "upstreams:\n  - name: svc\n"}, format="json")
    entry = AuditLog.objects.get(object_repr="svc")
    assert (entry.source, entry.actor_label, entry.action) == ("config", "alice", "create")


def test_the_schema_endpoint_serves_the_json_schema(api: APIClient) -> None:
    assert api.get(f"{V1}/schema").json()["$defs"]["route"]["required"] == ["name", "upstream"]
