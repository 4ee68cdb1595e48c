"""Concurrent admin API writes and config applies against real PostgreSQL connections (one per
thread): they queue on one lock order or are retried, and nobody ever gets a 500
(proxy/transactions.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError, connection, connections
from rest_framework.test import APIClient

from proxy.models import Plan
from tests.adminapi.factories import client_for, staff

pytestmark = pytest.mark.django_db(transaction=True)

PLANS = "plans:\n" + "".join(f"  - slug: t-{i}\n    name: t-{i}\n" for i in range(40))


def _call(client: APIClient, method: str, path: str, body: dict[str, Any], out: dict[str, Any], name: str) -> None:
    try:
        response = getattr(client, method)(path, body, format="json")
        out[name] = (response.status_code, response.json())
    except Exception as exc:  # an exception escaping the view is what a 500 is
        out[name] = (500, repr(exc))
    finally:
        connections.close_all()


@pytest.fixture
def operator(transactional_db: None) -> User:
    return staff("olga")


def test_a_diff_and_a_crossing_plan_create_never_deadlock_into_a_500(operator: User) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("deadlocks need PostgreSQL (SQLite has one writer at a time)")
    diff_client, write_client = client_for(operator), client_for(operator)
    seen: list[dict[str, Any]] = []
    # The diff inserts t-0 … t-39 in one transaction; the POST wants name t-39 and slug t-0,
    # the same unique index entries in the opposite order. Started at several points of the diff.
    for delay in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4):
        out: dict[str, Any] = {}
        diff = threading.Thread(
            target=_call, args=(diff_client, "post", "/api/admin/v1/config/diff", {"config": PLANS}, out, "diff")
        )
        write = threading.Thread(
            target=_call,
            args=(write_client, "post", "/api/admin/v1/plans/", {"name": "t-39", "slug": "t-0"}, out, "write"),
        )
        diff.start()
        time.sleep(delay)
        write.start()
        diff.join(60)
        write.join(60)
        seen.append(out)
        assert out["diff"][0] == 200, out
        assert out["write"][0] == 201, out  # it waited for the diff instead of deadlocking with it
        assert out["diff"][1]["counts"]["create"] in (39, 40)  # 39 when the plan committed first
        Plan.objects.filter(slug="t-0").delete()
    assert not Plan.objects.exists()


def test_a_lost_race_is_retried(operator: User, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deadlock the lock order cannot prevent (e.g. with a portal write) is run again."""
    from adminapi import serializers

    calls = {"n": 0}
    original = serializers.PlanSerializer.create

    def deadlock_once(self: Any, validated_data: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            _raise_sqlstate("40P01")
        return original(self, validated_data)

    monkeypatch.setattr(serializers.PlanSerializer, "create", deadlock_once)
    response = client_for(operator).post("/api/admin/v1/plans/", {"name": "Gold", "slug": "gold"}, format="json")
    assert response.status_code == 201 and calls["n"] == 2
    assert Plan.objects.filter(slug="gold").count() == 1


def test_a_race_lost_every_time_is_a_409_and_a_dead_database_a_503(
    operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adminapi import serializers

    client = client_for(operator)
    monkeypatch.setattr(serializers.PlanSerializer, "create", lambda self, data: _raise_sqlstate("40001"))
    busy = client.post("/api/admin/v1/plans/", {"name": "Gold", "slug": "gold"}, format="json")
    assert busy.status_code == 409 and "concurrent" in busy.json()["detail"]

    def gone(self: Any, data: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(serializers.PlanSerializer, "create", gone)
    down = client.post("/api/admin/v1/plans/", {"name": "Gold", "slug": "gold"}, format="json")
    assert down.status_code == 503 and down["Retry-After"] == "1"
    assert "unavailable" in down.json()["detail"]
    assert not Plan.objects.exists()


def _raise_sqlstate(sqlstate: str) -> Any:
    """An OperationalError as Django raises it for a deadlock (40P01) or serialization failure
    (40001): the driver's error as its cause."""

    class DriverError(Exception):
        pass

    cause = DriverError("deadlock detected" if sqlstate == "40P01" else "could not serialize access")
    cause.sqlstate = sqlstate  # type: ignore[attr-defined]
    raise OperationalError(str(cause)) from cause


def test_django_admin_writes_queue_behind_a_config_apply(operator: User) -> None:
    """Django admin takes the same lock order: a plan saved there waits for a running apply
    (held here by another connection) instead of deadlocking with it."""
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    from django.db import transaction
    from django.test import Client

    from proxy.transactions import config_lock

    holding, released = threading.Event(), threading.Event()

    def apply_in_progress() -> None:
        try:
            with transaction.atomic():
                config_lock(shared=False)
                holding.set()
                time.sleep(0.8)
                released.set()
        finally:
            connections.close_all()

    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    thread = threading.Thread(target=apply_in_progress)
    thread.start()
    assert holding.wait(10)
    started = time.monotonic()
    response = client.post(
        "/admin/proxy/plan/add/", {"name": "Gold", "slug": "gold", "scope": "partner", "public": "on"}
    )
    waited = time.monotonic() - started
    thread.join(10)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert released.is_set() and waited >= 0.5, waited
    assert Plan.objects.filter(slug="gold").exists()
