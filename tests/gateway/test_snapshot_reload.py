"""A snapshot reload does not stall the event loop: loading, compiling and serialising run in
the worker thread (issue 14: ≈550 ms on the loop at 100k partners before)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from proxy.gateway.config import GatewayConfig
from proxy.gateway.redis_keys import RedisKeys
from proxy.gateway.snapshot import ConfigStore, dumps_in_slices


def many_partners(n: int) -> dict[str, Any]:
    return {
        "upstreams": [],
        "routes": [],
        "plans": [{"slug": "gold", "scope": "key", "limits": {"minute": 60}, "quotas": {}}],
        "partners": [
            {
                "id": i,
                "slug": f"p{i}",
                "status": "active",
                "subscriptions": {"api": "gold"},
                "ip_allow": [],
                "ip_deny": [],
            }
            for i in range(n)
        ],
        "keys": [
            {"id": i, "prefix": f"{i:08x}", "hash": "0" * 64, "partner": i, "products": [], "expires": None}
            for i in range(n)
        ],
        "jwt_issuers": [],
    }


def test_the_sliced_serialisation_is_plain_compact_json() -> None:
    data = many_partners(2345)
    data["empty"] = []
    assert dumps_in_slices(data, size=100) == json.dumps(data, separators=(",", ":"))


@pytest.mark.timeout(120)
def test_a_reload_of_a_large_snapshot_does_not_stall_the_loop() -> None:
    data = many_partners(50_000)

    async def scenario() -> tuple[float, float]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        keys = RedisKeys(f"{settings.REDIS_PREFIX}reload-{uuid.uuid4().hex[:6]}:")
        store = ConfigStore(GatewayConfig(), lambda: data, client, keys)
        stall = 0.0
        done = False

        async def ticker() -> None:
            nonlocal stall
            while not done:
                before = time.perf_counter()
                await asyncio.sleep(0.001)
                stall = max(stall, time.perf_counter() - before - 0.001)

        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        try:
            assert await store.refresh(force=True)
        finally:
            took = time.perf_counter() - started
            done = True
            await tick
            await client.delete(keys.config_snapshot)
            await client.aclose()
        assert store.snapshot is not None and len(store.snapshot.auth.partners) == 50_000
        return took, stall

    took, stall = asyncio.run(scenario())
    # The reload itself takes far longer than this on any machine (≈1 s here); on the loop it
    # stalled for nearly all of it.
    assert stall < min(0.15, took / 3), (took, stall)
