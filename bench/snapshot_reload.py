"""Snapshot reload at scale: what a rebuild costs, and how long it stalls the event loop.

Builds a throwaway SQLite database with N partners (each active, subscribed, one key) plus M
pending sign-ups and R routes (the route benchmark's mix, bench/routes.py, over 10 upstreams),
then measures, one after the other:

- ``build_snapshot()`` (the ORM reads, in the gateway's worker thread),
- ``Snapshot.compile`` and ``json.dumps`` of the result,
- the longest event-loop stall during ``ConfigStore.refresh`` (a 1 ms ticker runs beside it),
  with compile and serialisation on the loop (how it was) and in the worker thread (how it is),
  and, for scale, the longest stall of the same ticker over an idle second;
- the memory the compiled snapshot holds (tracemalloc: what stays allocated after compiling,
  and the peak while compiling), and the route match cost on the compiled table (p50/p99 µs
  over the route benchmark's requests).

    python -m bench.snapshot_reload [--partners 100000] [--signups 100000] [--routes 0] [--json]
    python -m bench.snapshot_reload --partners 1000 --signups 0 --routes 10000   # routes at scale

Needs Redis (REDIS_URL, default redis://127.0.0.1:6379/15); keys under a prefix of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import django_env


def _populate(partners: int, signups: int, routes: int = 0) -> None:
    from django.db import transaction

    from bench.routes import route_specs
    from proxy.models import ApiKey, ApiProduct, Partner, Plan, Route, Subscription, Upstream

    with transaction.atomic():
        upstreams = Upstream.objects.bulk_create([Upstream(name=f"u{i}") for i in range(10)])
        routes_rows: list[Route] = []
        for spec in route_specs(routes):
            fields = {k: v for k, v in spec.items() if k not in ("id", "upstream")}
            routes_rows.append(Route(upstream=upstreams[spec["id"] % 10], **fields))
        Route.objects.bulk_create(routes_rows, batch_size=2000)
        product = ApiProduct.objects.create(name="Appliances", slug="appliances")
        plan = Plan.objects.create(name="Gold", slug="gold", per_minute=600, quota_day=100_000)
        rows = [Partner(name=f"p{i}", slug=f"p{i}", status="active") for i in range(partners)]
        rows += [Partner(name=f"s{i}", slug=f"s{i}", status="pending") for i in range(signups)]
        Partner.objects.bulk_create(rows, batch_size=5000)
        active = list(Partner.objects.filter(status="active").values_list("pk", flat=True))
        Subscription.objects.bulk_create(
            [Subscription(partner_id=pk, product=product, plan=plan) for pk in active], batch_size=5000
        )
        ApiKey.objects.bulk_create(
            [ApiKey(partner_id=pk, name="k", prefix=f"{pk:08x}"[-8:], hashed="0" * 64) for pk in active],
            batch_size=5000,
        )


async def max_stall(work: Any) -> tuple[float, float]:
    """Run ``work()`` beside a 1 ms ticker; returns (its duration, the longest tick delay) in ms."""
    stall = 0.0
    done = False

    async def ticker() -> None:
        nonlocal stall
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            stall = max(stall, (time.perf_counter() - before - 0.001) * 1000)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await work()
    took = (time.perf_counter() - started) * 1000
    done = True
    await tick
    return took, stall


def _memory_and_match(data: Any) -> dict[str, Any]:
    """What the compiled snapshot keeps in memory, and what a match costs on its route table."""
    import gc
    import statistics
    import tracemalloc

    from bench.routes import requests_for
    from proxy.gateway.errors import GatewayError
    from proxy.gateway.snapshot import Snapshot

    gc.collect()
    tracemalloc.start()
    snapshot = Snapshot.compile(data, 3)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out: dict[str, Any] = {"snapshot_held_mib": held / 2**20, "compile_peak_mib": peak / 2**20}
    routes = len(data["routes"])
    if routes:
        timings = []
        match = snapshot.routes.match
        for host, path, method, headers, query in requests_for(routes, 20_000):
            started = time.perf_counter_ns()
            try:
                match(host=host, path=path, method=method, headers=headers, query_string=query)
            except GatewayError:
                pass
            timings.append(time.perf_counter_ns() - started)
        timings.sort()
        out["match_p50_us"] = statistics.median(timings) / 1000
        out["match_p99_us"] = timings[int(len(timings) * 0.99)] / 1000
    return out


async def _reload(partners: int, signups: int) -> dict[str, Any]:
    import redis.asyncio as aioredis
    from django.conf import settings

    from proxy.gateway.config import GatewayConfig
    from proxy.gateway.snapshot import ConfigStore, Snapshot
    from proxy.gateway.vocabulary import RedisKeys
    from proxy.snapshot_builder import build_snapshot

    config = GatewayConfig.from_settings(settings)
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    keys = RedisKeys(settings.REDIS_PREFIX)
    store = ConfigStore(config, build_snapshot, client, keys)
    result: dict[str, Any] = {"partners": partners, "pending_signups": signups}
    # What the ticker sees with nothing to do: the machine's own scheduling noise.
    _, result["idle_loop_stall_ms"] = await max_stall(lambda: asyncio.sleep(1.0))
    try:
        # CPU time beside the wall clock: on a shared machine the wall clock mostly says how busy
        # the other processes were.
        started, cpu = time.perf_counter(), time.process_time()
        data = await asyncio.to_thread(build_snapshot)
        result["build_snapshot_ms"] = (time.perf_counter() - started) * 1000
        result["build_snapshot_cpu_ms"] = (time.process_time() - cpu) * 1000
        result["partners_in_snapshot"] = len(data["partners"])
        result["routes_in_snapshot"] = len(data["routes"])
        started, cpu = time.perf_counter(), time.process_time()
        Snapshot.compile(data, 1)
        result["compile_ms"] = (time.perf_counter() - started) * 1000
        result["compile_cpu_ms"] = (time.process_time() - cpu) * 1000
        started = time.perf_counter()
        payload = json.dumps(data, separators=(",", ":"))
        result["json_dumps_ms"] = (time.perf_counter() - started) * 1000
        result["snapshot_bytes"] = len(payload)

        async def inline() -> None:  # how refresh() was: only the loader in the worker thread
            loaded = await asyncio.to_thread(build_snapshot)
            Snapshot.compile(loaded, 2)
            json.dumps(loaded)

        result["before_reload_ms"], result["before_loop_stall_ms"] = await max_stall(inline)

        async def now() -> None:
            await store.refresh(force=True)

        result["after_reload_ms"], result["after_loop_stall_ms"] = await max_stall(now)
        result.update(_memory_and_match(data))
    finally:
        await client.delete(keys.config_snapshot)
        await client.aclose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partners", type=int, default=100_000)
    parser.add_argument("--signups", type=int, default=100_000)
    parser.add_argument("--routes", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="apigw-bench-") as tmp:
        django_env.setup(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", "snapshot")
        started = time.perf_counter()
        _populate(args.partners, args.signups, args.routes)
        print(f"populated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        result = asyncio.run(_reload(args.partners, args.signups))
    if args.json:
        print(json.dumps(result))
        return
    for name, value in result.items():
        print(f"{name:24} {value:,.1f}" if isinstance(value, float) else f"{name:24} {value:,}")


if __name__ == "__main__":
    main()
