"""The registry of circuits (proxy/gateway/circuits.py): kept across snapshot swaps, shared between
instances through a real Redis without any call on the request path."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from proxy.gateway.balancer import Upstream
from proxy.gateway.breaker import CLOSED, OPEN
from proxy.gateway.circuits import CircuitRegistry
from proxy.gateway.vocabulary import RedisKeys
from tests.servers import free_port

pytestmark = pytest.mark.timeout(30)


def compiled(*urls: str, **spec: Any) -> Upstream:
    return Upstream({"name": "u", "targets": [{"url": u} for u in urls], **spec})


def keys() -> RedisKeys:
    return RedisKeys(os.environ["REDIS_PREFIX"] + f"health{free_port()}:")


def test_circuits_survive_a_snapshot_swap_and_removed_targets_go() -> None:
    health = CircuitRegistry(aioredis.Redis.from_url(os.environ["REDIS_URL"]), keys())
    first = compiled("http://10.0.0.1:80", "http://10.0.0.2:80", breaker={"threshold": 1})
    health.bind({"u": first})
    first.circuits[0].failure(time.time())
    assert first.circuits[0].state == OPEN
    second = compiled("http://10.0.0.1:80", breaker={"threshold": 3})
    health.bind({"u": second})
    assert second.circuits[0] is first.circuits[0]
    assert second.circuits[0].state == OPEN
    assert second.circuits[0].settings.threshold == 3
    assert list(health.circuits) == ["u|http://10.0.0.1:80"]
    assert health._pending == {"u|http://10.0.0.1:80": ("o", int(first.circuits[0].until * 1000), 1)}


def test_instances_share_circuits_through_redis_without_a_call_per_request() -> None:
    """In-process: two circuit registries (two instances) on one Redis. An opening reaches the
    other instance by pub/sub in milliseconds; nothing is read from Redis per request."""
    shared = keys()
    spec: dict[str, Any] = {"name": "u", "targets": [{"url": "http://10.9.9.9:1"}], "breaker": {"threshold": 1}}

    async def scenario() -> None:
        clients = [aioredis.Redis.from_url(os.environ["REDIS_URL"]) for _ in range(2)]
        instances = [CircuitRegistry(c, shared, poll_seconds=0.2) for c in clients]
        upstreams = [Upstream(spec) for _ in instances]
        for health, upstream in zip(instances, upstreams, strict=True):
            health.bind({"u": upstream})
        async with aiohttp.ClientSession() as session:
            for health in instances:
                await health.start(session)
            await asyncio.sleep(0.2)  # subscribed
            mine, theirs = upstreams[0].circuits[0], upstreams[1].circuits[0]
            mine.failure(time.time())
            assert mine.state == OPEN
            for _ in range(100):
                if theirs.state == OPEN:
                    break
                await asyncio.sleep(0.01)
            assert theirs.state == OPEN and theirs.until == pytest.approx(mine.until, abs=0.002)
            mine.close(local=True)
            for _ in range(100):
                if theirs.state == CLOSED:
                    break
                await asyncio.sleep(0.01)
            assert theirs.state == CLOSED
            for health in instances:
                await health.stop()
        for c in clients:
            await c.aclose()

    asyncio.run(scenario())
