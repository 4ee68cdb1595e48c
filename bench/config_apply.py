"""``gatewayconfig apply`` at scale: a file of N routes applied to an empty database, applied
again unchanged, then with a tenth of its routes changed.

The routes are the route benchmark's mix (bench/routes.py: prefixes, exact paths, regexes with
parameters, header, host and query matchers, priorities), spread over 10 upstreams and 5
products. Each step runs the management command as an operator would (``call_command``, its
output captured and counted) in a throwaway database: SQLite in a temporary directory, or with
``--postgres`` a fresh PostgreSQL database on ``DATABASE_URL``'s server, dropped afterwards.

    python -m bench.config_apply [--routes 10000] [--postgres] [--json]
    python -m bench.config_apply --routes 1000 --profile reapply --sort tottime   # cProfile one step

Needs Redis (REDIS_URL, default redis://127.0.0.1:6379/15) for the config version bump; keys
under a prefix of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench import django_env
from bench.routes import route_specs

UPSTREAMS = 10
PRODUCTS = 5
# Route spec keys the file format names the same way (bench/routes.py builds compiled specs).
FILE_KEYS = ("path_type", "path", "methods", "headers", "query", "hosts", "priority", "strip_prefix", "rewrite")


def config_data(routes: int, *, changed_every: int = 0) -> dict[str, Any]:
    """The configuration file as data; ``changed_every`` > 0 changes every n-th route."""
    data: dict[str, Any] = {
        "version": 1,
        "products": [{"slug": f"product-{i}", "name": f"Product {i}"} for i in range(PRODUCTS)],
        "upstreams": [
            {"name": f"upstream-{i}", "targets": [{"url": f"http://10.0.{i}.{t}:8000"} for t in (1, 2)]}
            for i in range(UPSTREAMS)
        ],
        "routes": [],
    }
    for spec in route_specs(routes):
        i = spec["id"]
        route: dict[str, Any] = {"name": f"route-{i:05d}", "upstream": f"upstream-{i % UPSTREAMS}"}
        route.update({k: spec[k] for k in FILE_KEYS if k in spec})
        if i % 3 == 0:
            route["product"] = f"product-{i % PRODUCTS}"
        if changed_every and i % changed_every == 0:
            route["limit_per_minute"] = 600
        data["routes"].append(route)
    return data


@contextlib.contextmanager
def _database(postgres: bool) -> Iterator[str]:
    """A database URL of a database nobody else uses, removed afterwards."""
    if not postgres:
        with tempfile.TemporaryDirectory(prefix="apigw-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        return
    import psycopg

    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test").rsplit("/", 1)[0]
    name = f"bench_apply_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _apply(path: Path, *, profile: bool, sort: str = "cumulative") -> dict[str, Any]:
    """One ``gatewayconfig apply``: seconds, queries, the summary line, progress lines."""
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    out, err = io.StringIO(), io.StringIO()
    profiler = cProfile.Profile() if profile else None
    with CaptureQueriesContext(connection) as queries:
        started, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        call_command("gatewayconfig", "apply", str(path), stdout=out, stderr=err)
        if profiler is not None:
            profiler.disable()
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
    writes = sum(1 for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE")))
    if profiler is not None:
        stats = io.StringIO()
        pstats.Stats(profiler, stream=stats).sort_stats(sort).print_stats(40)
        print(stats.getvalue(), file=sys.stderr)
    return {
        "seconds": round(took, 3),
        "cpu_seconds": round(cpu, 3),  # this process only; the database server's time is apart
        "queries": len(queries.captured_queries),
        "writes": writes,
        "summary": out.getvalue().strip().splitlines()[-1],
        "progress_lines": len(err.getvalue().splitlines()),
    }


def run(routes: int, *, postgres: bool, profile: str = "", sort: str = "cumulative") -> dict[str, Any]:
    with _database(postgres) as url, tempfile.TemporaryDirectory(prefix="apigw-bench-") as tmp:
        django_env.setup(url, "apply")
        first, changed = Path(tmp) / "routes.yaml", Path(tmp) / "changed.yaml"
        first.write_text(yaml.safe_dump(config_data(routes), sort_keys=False), encoding="utf-8")
        changed.write_text(yaml.safe_dump(config_data(routes, changed_every=10), sort_keys=False), encoding="utf-8")
        from django.conf import settings

        result: dict[str, Any] = {
            "routes": routes,
            "database": "postgresql" if postgres else "sqlite",
            "apply": _apply(first, profile=profile == "apply", sort=sort),
            "reapply": _apply(first, profile=profile == "reapply", sort=sort),
            "update_tenth": _apply(changed, profile=profile == "update", sort=sort),
        }
        from proxy.configbus import keys, redis_client

        result["config_version"] = int(redis_client().get(keys().config_version) or 0)
        redis_client().delete(keys().config_version)
        assert settings.REDIS_PREFIX.startswith("bench-apply-")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, default=10_000)
    parser.add_argument("--postgres", action="store_true", help="a fresh database on DATABASE_URL's server")
    parser.add_argument("--profile", choices=("apply", "reapply", "update"), default="", help="cProfile one step")
    parser.add_argument("--sort", default="cumulative", help="the profile's order (cumulative, tottime, ...)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.routes, postgres=args.postgres, profile=args.profile, sort=args.sort)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['routes']:,} routes on {result['database']}; config version bumped {result['config_version']}x")
    for step in ("apply", "reapply", "update_tenth"):
        r = result[step]
        print(
            f"{step:13} {r['seconds']:8.2f} s ({r['cpu_seconds']:6.2f} s CPU)  "
            f"{r['queries']:6,} queries  {r['writes']:6,} writes  {r['summary']}"
        )


if __name__ == "__main__":
    main()
