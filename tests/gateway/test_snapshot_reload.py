"""A snapshot reload does not stall the event loop: loading, compiling and serialising run in
the worker thread (issue 14: ≈550 ms on the loop at 100k partners before)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from bench.snapshot_reload import max_stall
from proxy.gateway.config import GatewayConfig
from proxy.gateway.snapshot import ConfigStore, dumps_in_slices
from proxy.gateway.vocabulary import RedisKeys


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

        async def reload() -> None:
            assert await store.refresh(force=True)

        try:
            took_ms, stall_ms = await max_stall(reload)  # the benchmark's own measure
        finally:
            await client.delete(keys.config_snapshot)
            await client.aclose()
        assert store.snapshot is not None and len(store.snapshot.auth.partners) == 50_000
        return took_ms / 1000, stall_ms / 1000

    took, stall = asyncio.run(scenario())
    # Done in one piece, the reload (≈ 1 s here) stalled the loop for nearly all of it. The
    # bound is a share of the reload's own time, measured in the same run: a slower host makes
    # both longer (a fixed 150 ms failed at 179 ms of a 956 ms reload on a slow VM).
    assert stall < took / 3, (took, stall)


def test_the_copy_in_redis_is_sent_once_per_version_and_serves_a_start_without_database() -> None:
    data = many_partners(10)

    async def scenario() -> None:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        keys = RedisKeys(f"{settings.REDIS_PREFIX}copy-{uuid.uuid4().hex[:6]}:")
        await client.set(keys.config_version, 7)
        uploads: list[int] = []
        try:
            stores = [ConfigStore(GatewayConfig(), lambda: data, client, keys) for _ in range(2)]
            for store in stores:
                script = store._store_script

                async def counting(*args: Any, _script: Any = script, **kwargs: Any) -> Any:
                    uploads.append(1)
                    return await _script(*args, **kwargs)

                store._store_script = counting  # type: ignore[assignment]
            assert await stores[0].refresh()
            assert await stores[1].refresh()  # the second instance finds version 7 stored already
            assert len(uploads) == 1
            assert await stores[1].refresh(force=True)  # a full reload may carry unbumped changes
            assert len(uploads) == 2

            def database_down() -> dict[str, Any]:
                raise OSError("database unreachable")

            starting = ConfigStore(GatewayConfig(), database_down, client, keys)
            assert await starting.refresh(force=True)
            assert starting.snapshot is not None and starting.snapshot.version == 7
            assert len(starting.snapshot.auth.partners) == 10
        finally:
            await client.delete(keys.config_snapshot, keys.config_version)
            await client.aclose()

    asyncio.run(scenario())
