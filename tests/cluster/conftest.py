"""The local cluster (localcluster/) started by the failure drills: gateway processes in
production mode behind nginx, on the test database and the test run's Redis namespace, and the
configuration every drill needs (a key-authenticated route to the demo upstream).

The drills run in ``make test-cluster`` (marker ``cluster``), on PostgreSQL: several processes
write usage at once, which SQLite serialises with errors under load.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import Sum

from localcluster.cluster import LocalCluster
from proxy import configbus
from proxy.models import ApiKey, Partner, Route, UsageFlush, UsageHourly
from tests import factories
from tests.conftest import subprocess_database_url

MEASUREMENTS: list[str] = []

# What the drills set on every instance; everything else is the production default.
DRILL_ENV = {
    "USAGE_FLUSH_SECONDS": "1",  # the database sees usage soon after the load ends
    "GATEWAY_CONFIG_POLL_SECONDS": "2",  # the default: propagation is measured by pub/sub
    "GATEWAY_DRAIN_SECONDS": "10",
    "LOG_LEVEL": "warning",
    "LOG_ACCESS": "false",  # nginx's access log says which instance served what
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEASUREMENTS:
        terminalreporter.section("local cluster drills: measured (shared machine, timings are noisy)")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


@pytest.fixture
def report() -> Callable[[str], None]:
    """Print a measurement now (-s) and in the run's summary."""

    def add(line: str) -> None:
        print(line)
        MEASUREMENTS.append(line)

    return add


@pytest.fixture
def start_cluster(transactional_db: None, settings: Any) -> Iterator[Callable[..., LocalCluster]]:
    """``start_cluster(n)`` on the shared Redis (the test run's namespace);
    ``start_cluster(n, redis="cluster")`` on a Redis Cluster of its own, which the test process's
    control plane (config bus, usage flush, factories) then uses too."""
    if shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"):
        pytest.skip("nginx is not installed (scripts/system-deps.sh installs it)")
    if connection.vendor != "postgresql":
        pytest.skip("the cluster drills need PostgreSQL: DATABASE_URL=postgres://... (make test-cluster sets it)")
    started: list[LocalCluster] = []

    def start(instances: int = 3, **options: Any) -> LocalCluster:
        if options.get("redis") == "cluster":
            # channels-redis speaks no Cluster: the channel layer stays on the tests' Redis,
            # where the test process's revocations are sent.
            options.setdefault("channel_redis_url", os.environ["REDIS_URL"])
        else:
            options.setdefault("redis_url", os.environ["REDIS_URL"])
        # Keys the test creates are hashed with the test settings' pepper; the cluster has a
        # production SECRET_KEY of its own, so it is given that pepper explicitly.
        pepper = {"API_KEY_PEPPER": os.environ.get("API_KEY_PEPPER") or django_settings.SECRET_KEY}
        cluster = LocalCluster(
            instances,
            database_url=subprocess_database_url(),
            redis_prefix=os.environ["REDIS_PREFIX"],
            env={**DRILL_ENV, **pepper, **options.pop("env", {})},
            **options,
        )
        started.append(cluster.start())
        if cluster.redis_cluster is not None:
            settings.REDIS_URL = cluster.redis_url
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


@dataclass
class Drill:
    """A partner with a key subscribed to a product whose route (every path, HTTP and WebSocket)
    goes to the cluster's demo upstream; ``key`` carries the load, ``warmup_secret`` the probes
    and ``ws_key`` the WebSockets, so the load's usage is the key's usage alone."""

    partner: Partner
    key: ApiKey
    secret: str
    warmup_secret: str
    ws_key: ApiKey
    ws_secret: str
    route: Route

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    def usage(self) -> dict[str, int]:
        sums = UsageHourly.objects.filter(key=self.key).aggregate(
            requests=Sum("requests"), status_2xx=Sum("status_2xx"), status_5xx=Sum("status_5xx")
        )
        return {name: int(value or 0) for name, value in sums.items()}

    def in_redis(self) -> dict[str, int]:
        """Requests of the key counted in Redis and not in the database yet: in the live usage
        hashes, and in claimed batches whose flush did not finish (replayed by any instance once
        they are ``orphan_after`` old); batches already applied (a UsageFlush row) are left out."""
        client = configbus.redis_client()
        marker = f"|{self.partner.pk}|{self.key.pk}|"
        found = {"live": 0, "unapplied_batches": 0}
        for raw in client.scan_iter(match=configbus.keys().prefix + "*usage*", count=1000):
            name = raw.decode() if isinstance(raw, bytes) else raw
            if client.type(name) not in (b"hash", "hash"):
                continue
            batch = name.rsplit("usage:batch:", 1)[1] if "usage:batch:" in name else None
            if batch is not None and UsageFlush.objects.filter(batch=batch).exists():
                continue
            for field, value in client.hgetall(name).items():
                text = field.decode() if isinstance(field, bytes) else field
                if marker in text and text.endswith("|req"):
                    found["live" if batch is None else "unapplied_batches"] += int(value)
        return found

    def wait_usage(self, requests: int, timeout: float = 30.0) -> dict[str, int]:
        """Wait until the database holds at least ``requests`` counted requests of the key (the
        gateways flush every second) and the count has stopped moving; return the sums."""
        deadline = time.monotonic() + timeout
        last: dict[str, int] = {}
        while time.monotonic() < deadline:
            now = self.usage()
            if now["requests"] >= requests and now == last:
                return now
            last = now
            time.sleep(1.5)
        return self.usage()


def ready_through(url: str, headers: dict[str, str], *, timeout: float = 20.0) -> None:
    """Until ``url`` answers 200 (the configuration reached the instance)."""
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline:
        try:
            status = httpx.get(url, headers=headers, timeout=5).status_code
        except httpx.HTTPError:
            status = 0
        if status == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} answered {status}, not 200, within {timeout} s")


@pytest.fixture
def make_drill() -> Callable[..., Drill]:
    def make(cluster: LocalCluster, *, ws_per_key: int | None = None, **plan: Any) -> Drill:
        product = factories.product(slug="drill")
        upstream = factories.upstream(name="demo", targets=[cluster.demo_url])
        route = factories.route(
            upstream=upstream,
            name="drill",
            path="/",
            product=product,
            protocols=["http", "websocket"],
            ws_max_connections_per_key=ws_per_key,
        )
        partner = factories.partner(slug="drill-partner")
        factories.subscription(partner=partner, product=product, plan=factories.plan(slug="drill", **plan))
        key, secret = factories.api_key(partner=partner, name="load")
        _warm, warmup_secret = factories.api_key(partner=partner, name="warmup")
        ws_key, ws_secret = factories.api_key(partner=partner, name="websockets")
        drill = Drill(partner, key, secret, warmup_secret, ws_key, ws_secret, route)
        for gateway in cluster.gateways:
            ready_through(gateway.url + "/api/v1/appliances", {"Authorization": f"Bearer {warmup_secret}"})
        return drill

    return make
