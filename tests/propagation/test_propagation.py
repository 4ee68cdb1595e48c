"""Configuration reaches running gateway processes, and survives the database going away; on a
single Redis and on a Redis Cluster (config version, pub/sub and the last good snapshot)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.db import connection

from proxy.models import Route
from tests import factories
from tests.conftest import subprocess_database_url
from tests.servers import Process, RedisBackend, TcpRelay, free_port, gateway_process, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def demo_route(demo_upstream: str) -> Route:
    upstream = factories.upstream(name="demo", targets=[demo_upstream])
    return factories.route(upstream=upstream, name="appliances", path="/api/v1", auth="public")


@pytest.fixture
def start_gateway(redis_backend: RedisBackend) -> Iterator[Any]:
    started: list[Process] = []

    def start(database_url: str | None = None) -> str:
        port = free_port()
        env = {"DATABASE_URL": database_url or subprocess_database_url(), **redis_backend.env}
        proc = gateway_process(port, env=env)
        started.append(proc.start())
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in started:
        proc.stop()


def status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_a_new_route_reaches_every_running_gateway_within_a_second(demo_route: Route, start_gateway: Any) -> None:
    gateways = [start_gateway(), start_gateway()]
    for base in gateways:
        assert status(base + "/api/v1/appliances") == 200
        assert status(base + "/v2/appliances") == 404

    factories.route(upstream=demo_route.upstream, name="v2", path="/v2", rewrite="/api/v1{path}", auth="public")

    for base in gateways:
        took = wait_until(lambda base=base: status(base + "/v2/appliances") == 200, timeout=1.0)
        assert took < 1.0


def test_a_disabled_route_stops_matching_within_a_second(demo_route: Route, start_gateway: Any) -> None:
    base = start_gateway()
    assert status(base + "/api/v1/appliances") == 200
    demo_route.enabled = False
    demo_route.save()
    wait_until(lambda: status(base + "/api/v1/appliances") == 404, timeout=1.0)


def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("cuts the database connection with a TCP relay; needs DATABASE_URL=postgres://...")


def test_the_gateway_keeps_serving_when_the_database_is_unreachable(demo_route: Route, start_gateway: Any) -> None:
    postgres_only()
    settings = connection.settings_dict
    relay = TcpRelay(settings.get("HOST") or "127.0.0.1", int(settings.get("PORT") or 5432)).start()
    try:
        url = subprocess_database_url().replace(f":{settings.get('PORT') or 5432}/", f":{relay.port}/")
        base = start_gateway(url)
        assert status(base + "/api/v1/appliances") == 200

        relay.cut()
        # A change while the gateway cannot read it: the version moves, the reload fails.
        factories.route(upstream=demo_route.upstream, name="v2", path="/v2", rewrite="/api/v1{path}", auth="public")
        ready = httpx.get(base + "/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["checks"]["database"]["ok"] is False
        assert ready.json()["checks"]["database"]["serving_last_snapshot"] is True
        for _ in range(20):
            assert status(base + "/api/v1/appliances") == 200
        assert status(base + "/v2/appliances") == 404

        # A new instance started now serves the last snapshot kept in Redis.
        late = start_gateway(url)
        assert status(late + "/api/v1/appliances") == 200

        relay.start()  # the database is back: the pending change arrives by the poll
        wait_until(lambda: status(base + "/v2/appliances") == 200, timeout=5.0)
    finally:
        relay.close()
