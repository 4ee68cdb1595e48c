from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from localcluster.redis_cluster import RedisCluster
from tests.servers import RedisBackend, RedisServer, ThreadServer, cluster_url, demo_process, free_port

pytest_plugins = ["tests.browser"]


@pytest.fixture(scope="session", autouse=True)
def _redis_namespace() -> Iterator[None]:
    """The run's keys live under its own prefix; remove exactly those at the end."""
    yield
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        for key in client.scan_iter(match=os.environ["REDIS_PREFIX"] + "*", count=1000):
            client.delete(key)
    except redis.RedisError:
        pass


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    client.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, which the test may stop and start again."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A local Redis Cluster (3 primaries, 1 replica each), started once per session."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are needed for the Redis Cluster runs")
    with RedisCluster(primaries=3, replicas=1).start() as cluster:
        yield cluster


@pytest.fixture(params=["single", "cluster"])
def redis_backend(request: pytest.FixtureRequest) -> RedisBackend:
    """Runs a test twice: on the shared single Redis and on the session's Redis Cluster. The
    control plane of the test process (usage flush, portal, config bus) follows it; the channel
    layer stays on the single Redis (channels-redis speaks no Cluster, CHANNEL_REDIS_URL)."""
    return redis_backend_for(request, request.param)


def redis_backend_for(request: pytest.FixtureRequest, name: str) -> RedisBackend:
    """The backend ``name`` ("single" or "cluster") for this test (see ``redis_backend``); for
    fixtures that run only chosen tests on both (``indirect`` parametrisation)."""
    if name == "single":
        return RedisBackend("single", os.environ["REDIS_URL"], {})
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    url = cluster_url(cluster.seeds)
    request.getfixturevalue("settings").REDIS_URL = url
    return RedisBackend("cluster", url, {"REDIS_URL": url, "CHANNEL_REDIS_URL": os.environ["REDIS_URL"]})


@pytest.fixture(scope="session")
def demo_upstream() -> Iterator[str]:
    """The demo appliance API in its own process: a real upstream on a 127.0.0.1 port."""
    port = free_port()
    proc = demo_process(port).start()
    yield f"http://127.0.0.1:{port}"
    proc.stop()


def subprocess_database_url() -> str:
    """DATABASE_URL of the test database, for gateway processes the test starts."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


@pytest.fixture
def static_gateway() -> Iterator[Callable[..., ThreadServer]]:
    """Start a Gateway in a thread, fed a fixed snapshot instead of the database."""
    from proxy.gateway.app import Gateway
    from proxy.gateway.config import GatewayConfig

    servers: list[ThreadServer] = []

    def start(data: dict[str, Any], **config: Any) -> ThreadServer:
        gw_config = GatewayConfig(
            redis_url=os.environ["REDIS_URL"],
            redis_prefix=os.environ["REDIS_PREFIX"] + f"static{free_port()}:",
            **config,
        )
        gateway = Gateway(gw_config, loader=lambda: data)

        server = ThreadServer(gateway).start()
        server.gateway = gateway  # type: ignore[attr-defined]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
