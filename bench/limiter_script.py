"""Redis CPU per request of the limiter script, driven directly at a Redis of its own.

Each "request" is the EVALSHA the gateway sends on the full path of ``bench/full_path.py``: a
plan with a per-second and a per-minute rate and a day and a month quota, the usage counter, the
key's last-used time, and the deltas of an earlier response (status class, latency). Requests
go out in pipelines of ``--batch`` calls (as the auto-pipelining limiter sends them) over
``--partners`` partners with real time as the clock, so the sliding windows fill as they do under
load. Reported: ``INFO commandstats`` usec_per_call of evalsha, and the server's
``used_cpu_sys + used_cpu_user`` delta per request, plus the commands run inside per request.

    python -m bench.limiter_script                      # the current proxy/gateway/ratelimit.lua
    python -m bench.limiter_script --script old.lua     # another version, for an A/B
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from proxy.gateway.ratelimit import SCRIPT, quota_window
from tests.servers import free_port, wait_until

GENEROUS = 10_000_000


def request(partner: int, now: float, deltas: bool) -> tuple[list[str], list[Any]]:
    day, day_end = quota_window("day", now)
    month, month_end = quota_window("month", now)
    subject = f"k{partner}"
    keys = [  # as pipeline.limits_for names them
        f"b:rl:{subject}:api:second",
        f"b:rl:{subject}:api:minute",
        f"b:q:{subject}:api:day:{day}",
        f"b:q:{subject}:api:month:{month}",
        "b:usage",
    ]
    now_ms = int(now * 1000)
    args: list[Any] = [now_ms, 4]
    args += ["r", GENEROUS, 1_000, 100, "r", GENEROUS, 60_000, 1_000]
    args += ["q", GENEROUS, int(day_end * 1000), 0, "q", GENEROUS, int(month_end * 1000), 0]
    prefix = f"{int(now // 3600)}|{partner}|{partner}|1|api"
    # The limiter sends a key's last-used time once a second (ratelimit.Limiter._args).
    args += [prefix, f"last|{partner}" if deltas else "", int(now)]
    if deltas:  # the first call of a batch carries the finished requests' deltas
        args += [f"{prefix}|2xx", 50, f"{prefix}|lat_ms", 150]
    return keys, args


def measure(client: redis.Redis, source: str, total: int, batch: int, partners: int) -> dict[str, float]:
    sha = client.script_load(source)
    assert sha == hashlib.sha1(source.encode()).hexdigest()
    warm = client.pipeline(transaction=False)
    for p in range(partners):  # windows and quotas exist before the measured calls
        keys, args = request(p, time.time(), False)
        warm.evalsha(sha, len(keys), *keys, *args)
    warm.execute()
    client.config_resetstat()
    cpu_before = _cpu(client)
    sent = 0
    started = time.perf_counter()
    while sent < total:
        pipe = client.pipeline(transaction=False)
        now = time.time()
        for i in range(batch):
            keys, args = request((sent + i) % partners, now, i == 0)
            pipe.evalsha(sha, len(keys), *keys, *args)
        replies = pipe.execute()
        assert all(reply[0] == 1 for reply in replies), replies[:3]
        sent += batch
    elapsed = time.perf_counter() - started
    cpu = _cpu(client) - cpu_before
    stats = client.info("commandstats")
    evalsha = stats["cmdstat_evalsha"]
    inner = sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_evalsha", "cmdstat_info"))
    return {
        "requests": sent,
        "usec_per_evalsha": float(evalsha["usec_per_call"]),
        "redis_cpu_us_per_request": cpu * 1e6 / sent,
        "commands_inside_per_request": inner / sent,
        "requests_per_second_driven": sent / elapsed,
    }


def _cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", type=Path, help="a ratelimit.lua to measure instead of the current one")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--partners", type=int, default=20)
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        parser.error("redis-server is needed")
    source = args.script.read_text() if args.script else SCRIPT
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="apigw-limiter-bench-")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        wait_until(lambda: _pings(client), timeout=10)
        result = measure(client, source, args.requests, args.batch, args.partners)
    finally:
        server.terminate()  # our own redis-server, by its handle
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    for name, value in result.items():
        print(f"{name:32} {value:,.2f}")
    return 0


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
