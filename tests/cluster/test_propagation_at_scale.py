"""With 5 instances, a configuration change and a key revocation reach every one of them within
a second (p99 over instances × repetitions), measured by probing each instance's own port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from localcluster.cluster import LocalCluster
from proxy import services
from tests import factories

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

INSTANCES = 5
REPETITIONS = 10


def until_everywhere(cluster: LocalCluster, path: str, headers: dict[str, str], status: int) -> list[float]:
    """Poll ``path`` on every instance directly, concurrently, until it answers ``status``;
    each instance's seconds from now. Gives up after 5 s (that instance then reports 5 s)."""

    async def probe(session: aiohttp.ClientSession, base: str, started: float) -> float:
        while time.monotonic() - started < 5.0:
            async with session.get(base + path, headers=headers) as response:
                await response.read()
                if response.status == status:
                    return time.monotonic() - started
            await asyncio.sleep(0.005)
        return 5.0

    async def run(started: float) -> list[float]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            return list(await asyncio.gather(*(probe(session, g.url, started) for g in cluster.gateways)))

    return asyncio.run(run(time.monotonic()))


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def test_a_route_change_and_a_revocation_reach_5_instances_within_a_second(
    start_cluster: Callable[..., Any], make_drill: Callable[..., Any], report: Callable[[str], None]
) -> None:
    cluster = start_cluster(INSTANCES)
    drill = make_drill(cluster)
    auth = drill.headers

    changes: list[float] = []
    for n in range(REPETITIONS):
        # A model save (what the admin and the admin API do): a new route, served at once.
        factories.route(
            upstream=drill.route.upstream,
            name=f"probe-{n}",
            path=f"/probe-{n}",
            rewrite="/status/204",
            product=drill.route.product,
        )
        changes += until_everywhere(cluster, f"/probe-{n}", auth, 204)

    revocations: list[float] = []
    for n in range(REPETITIONS):
        key, secret = factories.api_key(partner=drill.partner, name=f"revoked-{n}")
        headers = {"Authorization": f"Bearer {secret}"}
        until_everywhere(cluster, "/status/200", headers, 200)
        services.api_key_revoke(key=key)
        revocations += until_everywhere(cluster, "/status/200", headers, 401)

    for name, samples in (("route change", changes), ("key revocation", revocations)):
        p50, p99, top = percentile(samples, 50), percentile(samples, 99), max(samples)
        report(
            f"{name} reaching {INSTANCES} instances ({len(samples)} samples: {REPETITIONS} changes x {INSTANCES}, "
            f"each instance probed directly): p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {top * 1000:.0f} ms"
        )
        assert p99 < 1.0, f"{name}: p99 {p99:.3f} s"
