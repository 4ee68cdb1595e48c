"""The compiled snapshot is kept out of the cyclic garbage collector's walks (gc.freeze), which is
only safe because it has no reference cycles: reference counting alone frees the old one when a
reload replaces it. At 10k routes the collector's walk over a fresh snapshot stalled the event
loop for 80-115 ms (docs/operations.md, "Configuration at scale")."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from bench.snapshot_reload import _populate
from proxy.gateway.config import GatewayConfig
from proxy.gateway.snapshot import ConfigStore, Snapshot
from proxy.gateway.vocabulary import RedisKeys
from proxy.snapshot_builder import build_snapshot


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give back to the collector what these tests froze, so later tests see the usual heap."""
    yield
    gc.unfreeze()


@pytest.mark.django_db
def test_a_compiled_snapshot_has_no_reference_cycles() -> None:
    _populate(partners=40, signups=5, routes=300)
    data = build_snapshot()
    assert len(data["routes"]) >= 300 and len(data["partners"]) == 40
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        snapshot = Snapshot.compile(data, 1)
        assert snapshot.routes
        del snapshot
        # Anything the collector still finds unreachable now was freed only by it: a cycle.
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.django_db(transaction=True)
def test_reloads_freeze_the_new_snapshot_and_free_the_old_one(unfrozen: None) -> None:
    _populate(partners=40, signups=0, routes=300)
    data = build_snapshot()

    async def scenario() -> list[int]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        keys = RedisKeys(f"{settings.REDIS_PREFIX}gc-{uuid.uuid4().hex[:6]}:")
        store = ConfigStore(GatewayConfig(), lambda: data, client, keys)
        frozen: list[int] = []
        try:
            for _ in range(4):
                assert await store.refresh(force=True)
                frozen.append(gc.get_freeze_count())
        finally:
            await client.delete(keys.config_snapshot)
            await client.aclose()
        return frozen

    # How many objects the collector would walk for one compiled snapshot.
    gc.collect()
    before = len(gc.get_objects())
    kept = Snapshot.compile(data, 0)
    per_snapshot = len(gc.get_objects()) - before
    del kept
    assert per_snapshot > 2000

    gc.unfreeze()
    frozen = asyncio.run(scenario())
    assert frozen[0] > per_snapshot  # the live snapshot is out of the collector's walks
    # Four snapshots were frozen one after the other; had the replaced ones stayed alive (a
    # cycle, or a reference kept somewhere), the frozen set would grow by a snapshot each time.
    assert frozen[-1] - frozen[0] < per_snapshot / 2, (frozen, per_snapshot)
