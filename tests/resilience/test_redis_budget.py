"""The design's budget: per proxied request at most one Redis round trip on the normal path
(the limiter's script), nothing for circuit breaking or health; a cache-enabled route adds its
lookup. Counted on a Redis server of the test's own, so other tests' traffic cannot blur it."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from proxy.gateway.app import Gateway
from proxy.gateway.config import GatewayConfig
from tests.resilience.conftest import route, upstream
from tests.servers import RedisServer, ThreadServer

pytestmark = pytest.mark.timeout(60)


class Monitor:
    """Top-level commands sent to a Redis server (MONITOR; commands run inside scripts, which
    MONITOR marks ``lua``, are the script's own business and not counted)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=0.2)
        self.sock.sendall(b"MONITOR\r\n")
        self.commands: Counter[str] = Counter()
        self.recording = False
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            buffer += data
            *lines, buffer = buffer.split(b"\r\n")
            for line in lines:
                found = re.match(rb'^\+[\d.]+ \[\d+ ([^\]]+)\] "([A-Za-z]+)"', line)
                if found and found.group(1) != b"lua" and self.recording:
                    self.commands[found.group(2).decode().lower()] += 1

    def measure(self) -> Counter[str]:
        self.commands = Counter()
        self.recording = True
        return self.commands

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def setup(backends: Any) -> Iterator[tuple[httpx.Client, Monitor]]:
    a, b = backends("a"), backends("b")
    server_redis = RedisServer().start()
    data = {
        "upstreams": [upstream("pair", a.url, b.url, health_check={"path": "/healthz", "interval": 5})],
        "routes": [
            route("limited", "/limited", "pair", limits={"second": 100_000}),
            route("cached", "/cached", "pair", limits={"second": 100_000}, cache={"ttl": 60}),
        ],
    }
    config = GatewayConfig(redis_url=server_redis.url, redis_prefix="budget:")
    server = ThreadServer(Gateway(config, loader=lambda: data)).start()
    monitor = Monitor(server_redis.port)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            http.get("/limited/warm-up")
            time.sleep(0.3)  # its commands have gone by before a test starts counting
            yield http, monitor
    finally:
        monitor.close()
        server.stop()
        server_redis.stop()


def settle(commands: Counter[str], **expected: int) -> None:
    """Wait until MONITOR has shown what the requests sent (its stream lags a little), then a
    moment longer so that anything extra would show too."""
    deadline = time.monotonic() + 3
    while any(commands[name] < count for name, count in expected.items()) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)


def test_a_proxied_request_costs_one_script_call_and_nothing_else(setup: Any) -> None:
    http, monitor = setup
    commands, started = monitor.measure(), time.monotonic()
    for i in range(200):
        assert http.get(f"/limited/{i}").status_code == 200
    seconds = time.monotonic() - started
    settle(commands, evalsha=200)
    counted = dict(commands)
    assert counted.pop("evalsha") == 200
    # Background only: config version and circuit-state polls, a few a second, never per request.
    assert sum(counted.values()) <= 5 + 4 * seconds, counted


def test_a_cache_enabled_route_adds_its_lookup(setup: Any) -> None:
    http, monitor = setup
    commands = monitor.measure()
    for _ in range(100):
        assert http.get("/cached/same").status_code == 200
    settle(commands, evalsha=100, mget=100, set=1)
    assert commands["evalsha"] == 100
    assert commands["mget"] == 100
    assert commands["set"] == 1  # one miss stored, 99 hits
