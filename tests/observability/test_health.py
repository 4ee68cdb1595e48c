"""/readyz: unready while Redis is down and ready again after; with the database down, ready
only while the last snapshot is fresh enough."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from django.test import Client

from apigw import health, runtime
from proxy.gateway.drain import Drain
from tests.observability.conftest import scrape, value
from tests.servers import RedisServer, wait_until


def readiness(base: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(base + "/readyz", timeout=5)
    return response.status_code, response.json()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_it_is_unready_while_redis_is_down_and_ready_again_after(own_redis: RedisServer, start_gateway: Any) -> None:
    base, _ = start_gateway(REDIS_URL=own_redis.url)
    status, body = readiness(base)
    assert status == 200, body
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "snapshot": True,
        "redis": True,
        "database": True,
    }
    assert value(scrape(base), "apigw_redis_up") == 1

    own_redis.stop()
    wait_until(lambda: readiness(base)[0] == 503, timeout=5, interval=0.1)
    status, body = readiness(base)
    assert body["status"] == "unready"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"]
    assert body["checks"]["snapshot"]["ok"] is True  # still serving what it has
    assert value(scrape(base), "apigw_redis_up") == 0

    own_redis.start()
    wait_until(lambda: readiness(base)[0] == 200, timeout=5, interval=0.1)
    assert value(scrape(base), "apigw_redis_up") == 1


@pytest.fixture
def database_down(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The gateway of this process serves snapshot version 6; Redis says the current is 7."""
    monkeypatch.setattr(health, "database_check", lambda: {"ok": False, "error": "OperationalError"})
    monkeypatch.setattr(health, "redis_check", lambda: ({"ok": True}, 7))

    def serve(version: int, age: float) -> None:
        snapshot = SimpleNamespace(version=version, built_at=time.time() - age)
        monkeypatch.setattr(
            runtime, "gateway", SimpleNamespace(store=SimpleNamespace(snapshot=snapshot), drain=Drain())
        )

    return serve


@pytest.mark.parametrize(
    ("version", "age", "max_age", "ready"),
    [
        (6, 10, 3600, True),  # behind, but loaded recently
        (6, 7200, 3600, False),  # behind for too long: other instances serve newer routes
        (7, 7200, 3600, True),  # old but current: nothing changed since
        (6, 7200, 0, True),  # no limit configured
    ],
)
def test_with_the_database_down_it_stays_ready_while_the_snapshot_is_fresh_enough(
    database_down: Any, client: Client, settings: Any, version: int, age: float, max_age: float, ready: bool
) -> None:
    settings.READYZ_SNAPSHOT_MAX_AGE = max_age
    database_down(version, age)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == (200 if ready else 503)
    assert body["status"] == ("ready" if ready else "unready")
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["serving_last_snapshot"] is ready
    assert body["checks"]["snapshot"] == {"ok": True, "version": version, "age_seconds": pytest.approx(age, abs=1)}


def test_without_a_snapshot_it_is_unready(database_down: Any, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "gateway", SimpleNamespace(store=SimpleNamespace(snapshot=None), drain=Drain()))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["snapshot"] == {"ok": False, "version": None, "age_seconds": None}
