"""Applying large files: the queries of an apply do not grow with its routes, a no-change
re-apply writes nothing, batched writes keep their audit entries and bump the version once, and
the command reports its progress."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditLog
from proxy import declarative
from proxy.configbus import bump_config_version
from proxy.management.commands import gatewayconfig
from proxy.models import Route
from tests.adminapi.factories import empty_configuration

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE")


def config(routes: int, *, changed: int = 0) -> str:
    """Two upstreams with a target each, a product, and ``routes`` routes of several shapes."""
    lines = [
        "products:\n  - slug: appliances\n    name: Appliances\n",
        "upstreams:\n",
        *(f"  - name: u{i}\n    targets:\n      - url: http://127.0.0.1:90{i}0\n" for i in range(2)),
        "routes:\n",
    ]
    for i in range(routes):
        shape = i % 4
        route = f"  - name: r{i:04d}\n    upstream: u{i % 2}\n"
        if shape == 0:
            route += f"    path: /api/r{i}\n    product: appliances\n"
        elif shape == 1:
            route += f"    path_type: regex\n    path: ^/items/r{i}/(?P<id>[0-9]+)$\n    methods: [GET]\n"
        elif shape == 2:
            route += f"    path: /api\n    hosts: [t{i}.example.com]\n"
        else:
            route += f"    path: /api/r{i}\n    headers:\n      - name: X-Version\n        value: '2'\n"
        if i < changed:
            route += "    limit_per_minute: 60\n"
        lines.append(route)
    return "".join(lines)


def queries(apply: Callable[[], Any]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        apply()
    return [q["sql"] for q in captured.captured_queries]


def writes(sql: list[str]) -> list[str]:
    return [q for q in sql if q.lstrip().upper().startswith(WRITES)]


def test_the_queries_of_an_apply_do_not_grow_with_its_routes() -> None:
    small = queries(lambda: declarative.apply(config(20)))
    empty_configuration()
    large = queries(lambda: declarative.apply(config(200)))

    assert Route.objects.count() == 200
    # Per-object reads and saves cost ≥ 5 queries per route (≥ 900 more here). Batched, the
    # 180 more routes add only INSERT statements: a few (PostgreSQL, 500 rows each), or one per
    # ≈ 19 routes on SQLite (Django keeps SQLite's statements under 999 parameters).
    assert len(large) - len(small) < 180 / 10, (len(small), len(large))


def test_a_no_change_reapply_writes_nothing_and_bumps_nothing(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    text = config(200)
    declarative.apply(text)
    entries = AuditLog.objects.count()

    with django_capture_on_commit_callbacks() as callbacks:
        sql = queries(lambda: declarative.apply(text))

    assert writes(sql) == []
    assert bump_config_version not in callbacks
    assert AuditLog.objects.count() == entries
    assert len(sql) < 30  # the reads: one per model, not one per route


def test_a_large_apply_bumps_the_config_version_once(django_capture_on_commit_callbacks: Callable[..., Any]) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        result = declarative.apply(config(200))

    assert result.counts()["create"] == 200 + 2 + 2 + 1
    assert callbacks.count(bump_config_version) == 1


def test_batched_writes_keep_one_audit_entry_per_changed_object() -> None:
    declarative.apply(config(40))
    created = AuditLog.objects.filter(content_type__model="route", action="create")
    assert created.count() == 40
    route = Route.objects.get(name="r0001")
    entry = created.get(object_id=str(route.pk))
    assert (entry.source, entry.object_repr, entry.before) == ("config", "r0001", None)
    after = entry.after or {}
    assert after["path"] == route.path and after["methods"] == ["GET"]

    result = declarative.apply(config(40, changed=3))

    assert [(c.action, c.name) for c in result.changes] == [
        ("update", "r0000"),
        ("update", "r0001"),
        ("update", "r0002"),
    ]
    updated = AuditLog.objects.filter(content_type__model="route", action="update").order_by("object_repr")
    assert [(e.object_repr, e.changed_fields) for e in updated] == [
        ("r0000", ["limit_per_minute"]),
        ("r0001", ["limit_per_minute"]),
        ("r0002", ["limit_per_minute"]),
    ]
    before, after = updated[0].before or {}, updated[0].after or {}
    assert (before["limit_per_minute"], after["limit_per_minute"]) == (None, 60)
    assert Route.objects.get(name="r0002").limit_per_minute == 60


def test_a_new_route_conflicting_with_one_the_file_leaves_out_is_refused() -> None:
    declarative.apply(config(4))
    text = config(0) + "  - name: copy\n    upstream: u0\n    path: /api/r0\n    product: appliances\n"

    with pytest.raises(declarative.ConfigInvalid) as refused:
        declarative.apply(text)

    assert [e.message for e in refused.value.errors] == [
        "Route 'r0000' already matches the same hosts, path, methods and matchers at this priority. "
        "Change the priority or make the matchers differ."
    ]
    assert not Route.objects.filter(name="copy").exists()


def test_the_command_reports_progress_on_stderr_unless_quiet(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gatewayconfig._Progress, "LARGE", 10)  # a phase of 10 objects counts as large
    path = tmp_path / "gateway.yaml"
    path.write_text(config(30))
    err = io.StringIO()

    call_command("gatewayconfig", "diff", str(path), stdout=io.StringIO(), stderr=err)

    assert "routes: 30/30" in err.getvalue()
    quiet = io.StringIO()
    call_command("gatewayconfig", "apply", str(path), "--quiet", stdout=io.StringIO(), stderr=quiet)
    call_command("gatewayconfig", "apply", str(path), verbosity=0, stdout=io.StringIO(), stderr=quiet)
    assert quiet.getvalue() == ""
    assert Route.objects.count() == 30


def test_batched_updates_of_list_and_matcher_fields_land() -> None:
    declarative.apply(config(8))
    text = config(8).replace("    hosts: [t2.example.com]\n", "    hosts: [t2.example.com, t2.example.org]\n")
    text = text.replace("        value: '2'\n", "        value: '3'\n").replace(
        "methods: [GET]", "methods: [get, post]"
    )

    result = declarative.apply(text)

    assert {c.name for c in result.changes} == {"r0001", "r0002", "r0003", "r0005", "r0007"}
    routes = {r.name: r for r in Route.objects.all()}
    assert routes["r0002"].hosts == ["t2.example.com", "t2.example.org"]
    assert routes["r0003"].headers == [{"name": "X-Version", "match": "exact", "value": "3"}]
    assert routes["r0005"].methods == ["GET", "POST"]  # as the model's clean() stores them
    assert declarative.apply(text).changes == []
