"""Export → apply on an empty database → export gives the same file; applies are idempotent."""

from __future__ import annotations

import pytest

from audit.models import AuditLog
from proxy import declarative
from proxy.models import ApiProduct, Partner, Route, Subscription, Target, Upstream
from tests import factories
from tests.adminapi.factories import empty_configuration

pytestmark = pytest.mark.django_db


def test_export_then_apply_on_an_empty_database_exports_the_same_file(configured: None) -> None:
    first = declarative.export_yaml()
    empty_configuration()
    assert Route.objects.count() == 0

    result = declarative.apply(first)

    assert result.applied and result.counts()["create"] > 10
    assert declarative.export_yaml() == first


def test_the_export_holds_no_secrets(configured: None) -> None:
    key, secret = factories.api_key(partner=Partner.objects.get(slug="acme"), name="k")
    text = declarative.export_yaml()
    assert secret not in text and key.prefix not in text and key.hashed not in text
    assert "keys" not in text


def test_applying_the_same_file_twice_changes_nothing(configured: None) -> None:
    text = declarative.export_yaml()
    empty_configuration()
    assert declarative.apply(text).changes
    entries = AuditLog.objects.count()

    again = declarative.apply(text)

    assert again.changes == []
    assert again.summary() == "No changes."
    assert AuditLog.objects.count() == entries


def test_apply_reports_each_created_updated_and_deleted_object(configured: None) -> None:
    text = declarative.export_yaml()
    text = text.replace("    path: /api/v1\n", "    path: /api/v2\n")
    text = text.replace("  - slug: gamma\n    name: Gamma\n", "")
    text = text.replace("upstreams:\n", "upstreams:\n  - name: brand-new\n")

    result = declarative.apply(text, prune=True)

    changes = {(c.action, c.kind, c.name): c for c in result.changes}
    assert set(changes) == {
        ("update", "route", "appliances-v1"),
        ("delete", "partner", "gamma"),
        ("create", "upstream", "brand-new"),
    }
    assert changes[("update", "route", "appliances-v1")].fields == {"path": ("/api/v1", "/api/v2")}
    assert Route.objects.get(name="appliances-v1").path == "/api/v2"
    assert not Partner.objects.filter(slug="gamma").exists()
    assert "~ route appliances-v1" in result.text() and 'path: "/api/v1" -> "/api/v2"' in result.text()


def test_a_dry_run_reports_the_changes_and_makes_none(configured: None) -> None:
    text = declarative.export_yaml().replace("weight: 5", "weight: 7")
    before = AuditLog.objects.count()

    result = declarative.apply(text, dry_run=True)

    assert not result.applied
    assert [(c.action, c.kind, c.name) for c in result.changes] == [
        ("update", "target", "legacy/http://127.0.0.1:8101")
    ]
    assert Target.objects.get(url="http://127.0.0.1:8101").weight == 5
    assert AuditLog.objects.count() == before
    assert declarative.diff(text).changes == result.changes


def test_without_prune_nothing_is_deleted(configured: None) -> None:
    result = declarative.apply("version: 1\nroutes: []\npartners: []\nupstreams: []\n")
    assert result.changes == []
    assert Route.objects.count() == 4


def test_prune_deletes_only_what_the_files_sections_leave_out(configured: None) -> None:
    text = """
version: 1
upstreams:
  - name: appliances
    description: Appliance service
    targets:
      - url: http://127.0.0.1:9
        weight: 3
  - name: legacy
    connect_timeout: 1.5
    read_timeout: 30.0
    targets:
      - url: http://127.0.0.1:8101
        weight: 5
routes:
  - name: appliances-v1
    upstream: appliances
    path: /api/v1
    methods: [GET, POST]
    product: appliance-api
"""
    result = declarative.apply(text, prune=True)

    deleted = {(c.kind, c.name) for c in result.changes if c.action == "delete"}
    assert deleted == {
        ("route", "status"),
        ("route", "item-v2"),
        ("route", "events"),
        ("upstream", "spare"),
        ("target", "legacy/http://127.0.0.1:8102"),
    }
    # Sections the file does not have are not managed by it.
    assert Partner.objects.count() == 3 and ApiProduct.objects.count() == 2
    assert set(Upstream.objects.values_list("name", flat=True)) == {"appliances", "legacy"}


def test_prune_refuses_to_delete_an_upstream_a_remaining_route_uses(configured: None) -> None:
    with pytest.raises(declarative.ConfigInvalid) as refused:
        declarative.apply("upstreams:\n  - name: appliances\n", prune=True)
    assert any("legacy" in e.message and "still use it" in e.message for e in refused.value.errors)
    assert Upstream.objects.filter(name="legacy").exists()


def test_prune_refuses_to_drop_a_product_that_still_guards_routes(configured: None) -> None:
    with pytest.raises(declarative.ConfigInvalid) as refused:
        declarative.apply("products:\n  - slug: events\n    name: Appliance events\n", prune=True)
    assert any("'appliance-api'" in e.message and "appliances-v1" in e.message for e in refused.value.errors)
    assert Route.objects.get(name="appliances-v1").product is not None


def test_prune_deletes_subscriptions_a_listed_partner_no_longer_has(configured: None) -> None:
    text = declarative.export_yaml()
    text = text.replace("      - product: appliance-api\n        plan: gold\n        status: rejected\n", "")
    result = declarative.apply(text, prune=True)
    assert [(c.action, c.kind, c.name) for c in result.changes] == [("delete", "subscription", "beta/appliance-api")]
    assert Subscription.objects.filter(partner__slug="beta").count() == 1


def test_routes_that_swap_their_priorities_do_not_conflict_halfway(db: None) -> None:
    base = "upstreams:\n  - name: u\nroutes:\n"
    route = "  - name: {name}\n    upstream: u\n    path: /x\n    priority: {priority}\n"
    declarative.apply(base + route.format(name="a", priority=1) + route.format(name="b", priority=2))

    result = declarative.apply(base + route.format(name="a", priority=2) + route.format(name="b", priority=1))

    assert len(result.changes) == 2
    assert dict(Route.objects.values_list("name", "priority")) == {"a": 2, "b": 1}


def test_routes_that_would_conflict_are_refused_with_their_line(db: None) -> None:
    text = (
        "upstreams:\n  - name: u\nroutes:\n  - name: a\n    upstream: u\n    path: /x\n"
        "  - name: b\n    upstream: u\n    path: /x/\n"
    )
    with pytest.raises(declarative.ConfigInvalid) as refused:
        declarative.apply(text)
    assert any("already matches" in e.message and e.line in (4, 7) for e in refused.value.errors)
    assert not Route.objects.exists()
