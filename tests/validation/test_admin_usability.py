"""Django admin usability (issue 19 item 8): JSON fields say what they expect and every field's
mistake is reported in one save; partners have one approve action (the one that emails)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from proxy.models import Partner, Route, Upstream

pytestmark = pytest.mark.django_db

ROUTE = {
    "name": "r",
    "enabled": "on",
    "priority": 0,
    "path_type": "prefix",
    "path": "/api",
    "rewrite": "",
    "retries": 2,
    "cache_max_bytes": 1048576,
    "cors_max_age": 600,
    "ws_rate_action": "close",
    "auth": "key",
    "encoded_slashes": "reject",
    "ws_max_message_bytes": 1048576,
}


def _errors(response: Any) -> str:
    errors = response.context["adminform"].form.errors
    return "\n".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())


def test_every_json_mistake_is_reported_at_once_with_what_is_expected(admin_client: Client) -> None:
    upstream = Upstream.objects.create(name="u")
    response = admin_client.post(
        "/admin/proxy/route/add/",
        {
            **ROUTE,
            "upstream": upstream.pk,
            "methods": "GET",  # not JSON
            "headers": '{"X-API-Version": "2"}',  # JSON, wrong shape
            "query": "[{'name': 'v'}]",  # Python, not JSON
            "request_transform": '{"set": ["X-Env"]}',
            "retry_statuses": "[503, 999]",
        },
    )
    assert response.status_code == 200
    errors = _errors(response)
    assert not Route.objects.exists()
    assert "Enter a valid JSON" not in errors
    assert (
        "methods: Not valid JSON: Expecting value at line 1, column 1. "
        'Expected a list of methods, e.g. ["GET", "POST"].' in errors
    )
    assert "headers: Expected a list of matchers" in errors and "got an object" in errors
    assert "query: Not valid JSON" in errors and "(JSON needs double quotes)" in errors
    assert "request_transform: Expected an object" in errors and '"set" must be an object' in errors
    assert "retry_statuses: Expected a list of HTTP statuses" in errors and "999 is not an HTTP status" in errors


def test_empty_json_boxes_save_as_empty_lists_and_objects(admin_client: Client) -> None:
    upstream = Upstream.objects.create(name="u")
    response = admin_client.post("/admin/proxy/route/add/", {**ROUTE, "upstream": upstream.pk})
    assert response.status_code == 302, _errors(response)
    route = Route.objects.get(name="r")
    assert route.methods == [] and route.headers == [] and route.request_transform == {}


def test_upstream_json_fields_say_what_they_expect_too(admin_client: Client) -> None:
    page = admin_client.get("/admin/proxy/upstream/add/")
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items()} | {"name": "u", "failure_statuses": "502"}
    data = {k: (v if not isinstance(v, list) else str(v)) for k, v in data.items()}
    data |= {"targets-TOTAL_FORMS": "0", "targets-INITIAL_FORMS": "0"}
    response = admin_client.post("/admin/proxy/upstream/add/", data)
    assert "failure_statuses: Expected a list of HTTP statuses, e.g. [502, 503, 504]; got a number." in _errors(
        response
    )
    assert not Upstream.objects.exists()


def test_there_is_one_approve_action_and_it_emails(admin_client: Client) -> None:
    from django.core import mail

    from tests.portal import factories

    pending = factories.make_member("hana@hearth.example", "hearth", status="pending")
    suspended = Partner.objects.create(name="Sus", slug="sus", status="suspended")
    page = admin_client.get(reverse("admin:proxy_partner_changelist")).content.decode()
    actions = re.findall(
        r'<option value="(\w+)">([^<]+)</option>', page.split('name="action"')[1].split("</select>")[0]
    )
    approving = [label for _, label in actions if "approve" in label.lower()]
    assert approving == ["Approve pending partners and email their owners"], actions
    response = admin_client.post(
        reverse("admin:proxy_partner_changelist"),
        {"action": "activate", "_selected_action": [str(pending.partner.pk), str(suspended.pk)]},
        follow=True,
    )
    assert "1 partner(s) active again. 1 were not suspended" in response.content.decode()
    pending.partner.refresh_from_db()
    suspended.refresh_from_db()
    assert pending.partner.status == "pending" and suspended.status == "active"  # approving is what emails
    assert mail.outbox == []
