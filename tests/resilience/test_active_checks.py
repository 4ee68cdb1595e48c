"""Active health checks (proxy/gateway/probes.py) through a real gateway and real upstreams."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from proxy.gateway.breaker import CLOSED, OPEN
from tests.resilience.conftest import route, upstream
from tests.servers import free_port, wait_until

pytestmark = pytest.mark.timeout(60)

CHECK = {"path": "/healthz", "interval": 0.1, "timeout": 0.5, "statuses": [200], "healthy": 2, "unhealthy": 2}


def names(client: httpx.Client, count: int = 6) -> set[str]:
    return {client.get("/pair/x").json()["name"] for _ in range(count)}


def test_a_failing_health_check_takes_a_target_out_and_passing_ones_bring_it_back(
    static_gateway: Any, backends: Any
) -> None:
    a, b = backends("a"), backends("b")
    server = static_gateway(
        {"upstreams": [upstream("pair", a.url, b.url, health_check=CHECK)], "routes": [route("pair", "/pair", "pair")]}
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert names(client) == {"a", "b"}
        httpx.post(b.url + "/_health", params={"status": "503"})  # b still serves, but says it is unwell
        wait_until(lambda: names(client) == {"a"}, timeout=5)
        assert server.gateway.health.circuits[f"pair|{b.url}"].checked_down
        httpx.post(b.url + "/_health", params={"status": "200"})
        wait_until(lambda: names(client) == {"a", "b"}, timeout=5)


def test_a_passing_health_check_lifts_a_passive_ejection(static_gateway: Any, backends: Any) -> None:
    a = backends("a")
    b_port = free_port()
    b_url = f"http://127.0.0.1:{b_port}"
    server = static_gateway(
        {
            "upstreams": [
                upstream("pair", a.url, b_url, breaker={"threshold": 1, "ejection": 300}, health_check=CHECK)
            ],
            "routes": [route("pair", "/pair", "pair")],
        }
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        circuit = server.gateway.health.circuits[f"pair|{b_url}"]
        wait_until(lambda: circuit.checked_down, timeout=5)
        backends("b", port=b_port)
        wait_until(lambda: not circuit.checked_down, timeout=5)
        names(client)
        circuit.open(time.time())  # as if requests had failed: out for 5 minutes
        assert circuit.state == OPEN
        wait_until(lambda: circuit.state == CLOSED, timeout=5)  # the next passing check ends it
        wait_until(lambda: "b" in names(client), timeout=5)
