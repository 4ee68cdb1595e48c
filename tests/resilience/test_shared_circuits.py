"""One instance's discovery protects the others: two real gateway processes (configured from the
database) in front of two real upstream processes; one upstream is killed under load."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests import factories
from tests.conftest import subprocess_database_url
from tests.resilience.backend import backend_process
from tests.resilience.load import run_load
from tests.servers import Process, free_port, gateway_process, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in reversed(started):
        proc.stop()


def names(client: httpx.Client, url: str, count: int = 6) -> set[str]:
    return {client.get(url).json()["name"] for _ in range(count)}


def test_a_killed_target_is_ejected_on_every_instance_and_comes_back(
    processes: list[Process], redis_client: redis.Redis
) -> None:
    a_port, b_port = free_port(), free_port()
    a_url = f"http://127.0.0.1:{a_port}"
    processes.append(backend_process(a_port, "a").start())
    processes.append(backend_process(b_port, "b").start())
    upstream = factories.upstream(
        name="pair",
        targets=[a_url, f"http://127.0.0.1:{b_port}"],
        failure_threshold=3,
        ejection_seconds=6,
        max_ejection_seconds=6,
    )
    factories.route(upstream=upstream, name="pair", path="/pair", auth="public")
    gateways = []
    for _ in range(2):
        port = free_port()
        processes.append(gateway_process(port, env={"DATABASE_URL": subprocess_database_url()}).start())
        gateways.append(f"http://127.0.0.1:{port}")
    first, second = gateways
    with httpx.Client(timeout=10) as client:
        for base in gateways:
            assert names(client, base + "/pair/x") == {"a", "b"}

        # Load on the first instance only; a dies in the middle of it.
        a = processes[0]
        results = run_load(first + "/pair/x", seconds=2.5, threads=8, events=((0.8, lambda: a.stop(signal.SIGKILL)),))
        assert len(results) > 100
        assert [r for r in results if r[0] != 200] == []

        # The second instance never saw a failure, yet it knows: requests that are never retried
        # (POST) all go to b while a is out.
        for _ in range(10):
            response = client.post(second + "/pair/x", content=b"{}")
            assert response.status_code == 200 and response.json()["name"] == "b"
        stored = redis_client.hget(os.environ["REDIS_PREFIX"] + "circuits", f"pair|{a_url}")
        assert stored is not None

        # a comes back: after the ejection the half-open probe finds it, on both instances.
        processes[0] = backend_process(a_port, "a").start()
        for base in gateways:
            wait_until(lambda base=base: "a" in names(client, base + "/pair/x"), timeout=20, interval=0.2)
        wait_until(
            lambda: redis_client.hget(os.environ["REDIS_PREFIX"] + "circuits", f"pair|{a_url}") is None, timeout=5
        )
