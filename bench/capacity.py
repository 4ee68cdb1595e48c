"""Redis capacity: what one limiter call costs Redis, hence how many gateway cores one Redis core
and one 3-primary Redis Cluster carry.

The limiter script in the tree (proxy/gateway/ratelimit.lua) is driven directly, with the KEYS and
ARGV the gateway builds for a real request: ``pipeline.limits_for`` (the keys: plan rate and quota
per partner, the route's rate per key, the usage hash, all under the partner's hash tag on a
cluster) and ``Limiter._args`` (the argument layout), plus the usage deltas a call carries for
earlier responses (``--deltas`` field pairs: status class and latency). The population: ``--keys``
API keys spread over ``--partners`` partners on one plan (per-partner minute limit and daily
quota) and one route (per-key second limit); limits are set high so every call is admitted (the
dearer path: everything is counted). Before measuring, every key's counters are filled as a
busy key's are (one call per second over the last minute, through the script itself).

Drivers:
- **pipelined Python** (redis-py + hiredis, ``--pipeline`` calls per round trip): varies the
  keys call by call, which ``redis-benchmark`` cannot (its ``__rand_int__`` is drawn per
  placeholder, so one call's keys would not belong together, nor to one cluster slot). Redis CPU
  per call is taken from Redis itself (``INFO cpu`` used_cpu_sys + used_cpu_user before and after,
  over the calls made; ``INFO commandstats`` usec_per_call of evalsha), so it does not depend on
  how fast the driver is; calls/s per Redis core = 1e6 / CPU µs per call.
- **redis-benchmark** (``--redis-benchmark``): one key set (a single hot key) at saturation, to
  check the derived figure against Redis actually running flat out.

Also: what WebSocket leases cost (leases.py: no Redis per message; per socket a lease renewal,
ZADD XX + PEXPIREAT per lease key, every LEASE_SECONDS / 3).

Every Redis here is started by this script on free loopback ports (one plain ``redis-server``;
with ``--cluster`` a 3-primary cluster through localcluster/redis_cluster.py) and stopped by PID.

    python -m bench.capacity [--calls 100000] [--keys 1000] [--partners 100] [--cluster] [--redis-benchmark] [--json]
    python -m bench.capacity --script old.lua     # another version of the script, same arguments
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis
from redis.crc import key_slot

from localcluster.redis_cluster import RedisCluster, RedisNode
from proxy.gateway.auth import AuthIndex, Identity, RoutePolicy
from proxy.gateway.leases import LEASE_SECONDS
from proxy.gateway.pipeline import limits_for
from proxy.gateway.ratelimit import SCRIPT, Check, Limiter
from proxy.gateway.routing import Route
from proxy.gateway.spec import RouteSpec, SnapshotData
from proxy.gateway.vocabulary import RedisKeys, key_subject, usage_field

PREFIX = "cap:"
HIGH = 1_000_000_000  # limits nobody reaches: every call is admitted and counted


@dataclass
class Call:
    keys: list[str]
    check: Check
    node: int = 0  # which Redis answers it (cluster: the owner of the tag's slot)


def population(keys: int, partners: int) -> tuple[SnapshotData, RouteSpec]:
    data: SnapshotData = {
        "plans": [
            {"slug": "gold", "scope": "partner", "limits": {"minute": HIGH}, "quotas": {"day": HIGH}},
        ],
        "partners": [
            {"id": p, "slug": f"partner-{p}", "status": "active", "subscriptions": {"appliances": "gold"}}
            for p in range(1, partners + 1)
        ],
        "keys": [
            {"id": k, "prefix": f"k{k:07d}", "hash": "0" * 64, "partner": 1 + (k - 1) % partners}
            for k in range(1, keys + 1)
        ],
    }
    route: RouteSpec = {
        "id": 7,
        "name": "appliances",
        "upstream": "u",
        "path_type": "prefix",
        "path": "/api",
        "product": "appliances",
        "auth": "key",
        "limits": {"second": HIGH},
    }
    return data, route


def calls_for(redis_keys: RedisKeys, keys: int, partners: int, now: float) -> list[Call]:
    """One call per API key, built by the gateway's own functions."""
    data, spec = population(keys, partners)
    index = AuthIndex(data)
    route = Route(spec)
    route.policy = RoutePolicy.from_spec(spec)
    plan = index.plans["gold"]
    out = []
    for key in index.keys.values():
        partner = index.partners[key.partner_id]
        identity = Identity(partner, key, plan, "appliances", "key", f"key:{key.id}")
        check = limits_for(redis_keys, identity, route, "203.0.113.9", now)
        out.append(Call([*check.keys, redis_keys.usage_key(check.tag)], check))
    return out


def argv(limiter: Limiter, call: Call, now: float, deltas: int) -> list[Any]:
    args = limiter._args(call.check, now)  # the gateway's own layout (ratelimit.py)
    for metric, value in (("2xx", 1), ("lat_ms", 12), ("4xx", 1))[:deltas]:
        args += [usage_field(call.check.usage_prefix, metric), value]
    return args


def cpu_seconds(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def evalsha_stats(client: redis.Redis) -> tuple[int, float, int]:
    """EVALSHA calls and usec, and the commands the scripts ran inside (all other commands but
    the INFO this reads with)."""
    stats = client.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {})
    inside = sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_evalsha", "cmdstat_info"))
    return int(evalsha.get("calls", 0)), float(evalsha.get("usec", 0)), inside


def drive(
    clients: list[redis.Redis], sha: str, calls: list[Call], total: int, *, deltas: int, pipeline: int, seconds: float
) -> dict[str, Any]:
    """``total`` calls round-robin over the key sets, ``pipeline`` per round trip per node;
    Redis' own CPU and commandstats before and after. Bounded by ``seconds``."""
    limiter = Limiter(cast(Any, None), RedisKeys(PREFIX))
    before = [(cpu_seconds(c), *evalsha_stats(c)) for c in clients]
    started = time.perf_counter()
    made = 0
    turn = 0
    while made < total and time.perf_counter() - started < seconds:
        now = time.time()
        pipes = [c.pipeline(transaction=False) for c in clients]
        for _ in range(pipeline * len(clients)):
            call = calls[turn % len(calls)]
            turn += 1
            pipes[call.node].execute_command(
                "EVALSHA", sha, len(call.keys), *call.keys, *argv(limiter, call, now, deltas)
            )
        for pipe in pipes:
            for reply in pipe.execute():
                if int(reply[0]) != 1:
                    raise RuntimeError(f"a call was refused: {reply}")
        made += pipeline * len(clients)
    wall = time.perf_counter() - started
    nodes = []
    inside = 0
    for client, (cpu0, calls0, usec0, inside0) in zip(clients, before, strict=True):
        calls1, usec1, inside1 = evalsha_stats(client)
        inside += inside1 - inside0
        cpu = cpu_seconds(client) - cpu0
        n = calls1 - calls0
        nodes.append(
            {
                "calls": n,
                "cpu_us_per_call": cpu * 1e6 / n if n else 0.0,
                "script_us_per_call": (usec1 - usec0) / n if n else 0.0,
                "busy": cpu / wall,
            }
        )
    calls_made = sum(n["calls"] for n in nodes)
    cpu_per_call = sum(n["cpu_us_per_call"] * n["calls"] for n in nodes) / calls_made
    return {
        "calls": calls_made,
        "seconds": round(wall, 2),
        "driver_calls_per_s": round(calls_made / wall),
        "redis_cpu_us_per_call": round(cpu_per_call, 2),
        "script_us_per_call": round(sum(n["script_us_per_call"] * n["calls"] for n in nodes) / calls_made, 2),
        "calls_per_s_per_core": round(1e6 / cpu_per_call),
        "commands_inside_per_call": round(inside / calls_made, 2),
        "nodes": nodes,
    }


def warm(clients: list[redis.Redis], sha: str, calls: list[Call], deltas: int) -> None:
    """Fill every key's counters as a busy key's are: one call per second over the last minute
    (the script's own writes, so this holds whatever layout the script uses)."""
    limiter = Limiter(cast(Any, None), RedisKeys(PREFIX))
    now = time.time()
    for step in range(60, 0, -1):
        then = now - step
        pipes = [c.pipeline(transaction=False) for c in clients]
        for call in calls:
            pipes[call.node].execute_command(
                "EVALSHA", sha, len(call.keys), *call.keys, *argv(limiter, call, then, deltas)
            )
        for pipe in pipes:
            pipe.execute()


def leases(client: redis.Redis, sockets: int, rounds: int) -> dict[str, Any]:
    """Lease renewals as leases.Leases.renew_forever sends them: ZADD XX + PEXPIREAT per lease."""
    keys = RedisKeys(PREFIX)
    lease_keys = [keys.socket_lease("", key_subject(s)) for s in range(sockets)]
    expires = int((time.time() + LEASE_SECONDS) * 1000)
    pipe = client.pipeline(transaction=False)
    for s, key in enumerate(lease_keys):
        pipe.zadd(key, {f"session-{s}": expires})
    pipe.execute()
    cpu0 = cpu_seconds(client)
    for _ in range(rounds):
        expires = int((time.time() + LEASE_SECONDS) * 1000)
        pipe = client.pipeline(transaction=False)
        for s, key in enumerate(lease_keys):
            pipe.zadd(key, {f"session-{s}": expires}, xx=True)
            pipe.pexpireat(key, expires)
        pipe.execute()
    per_renewal = (cpu_seconds(client) - cpu0) * 1e6 / (sockets * rounds)
    renewals_per_minute = 60 / (LEASE_SECONDS / 3)
    return {
        "redis_cpu_us_per_lease_renewal": round(per_renewal, 2),
        "renewals_per_socket_minute_per_lease": renewals_per_minute,
        "redis_cpu_us_per_socket_minute_per_lease": round(per_renewal * renewals_per_minute, 1),
    }


def redis_benchmark(port: int, sha: str, call: Call, deltas: int, requests: int) -> dict[str, Any]:
    """redis-benchmark at saturation on one key set (the same keys every call: a hot key)."""
    limiter = Limiter(cast(Any, None), RedisKeys(PREFIX))
    args = [str(a) for a in argv(limiter, call, time.time(), deltas)]
    command = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(requests), "-c", "50", "-P", "16"]
    command += ["--csv", "EVALSHA", sha, str(len(call.keys)), *call.keys, *args]
    client = redis.Redis(port=port)
    cpu0 = cpu_seconds(client)
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout
    cpu = cpu_seconds(client) - cpu0
    rps = float(out.strip().splitlines()[-1].split(",")[1].strip('"'))
    return {"calls_per_s": round(rps), "redis_cpu_us_per_call": round(cpu * 1e6 / requests, 2)}


def single(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="apigw-capacity-") as tmp:
        node = RedisNode(Path(tmp), node_timeout_ms=None).start_and_wait()
        try:
            client = redis.Redis(port=node.port)
            sha = client.script_load(args.script_text)
            calls = calls_for(RedisKeys(PREFIX), args.keys, args.partners, time.time())
            if args.warm:
                warm([client], sha, calls, args.deltas)
            result: dict[str, Any] = {
                "limiter": drive(
                    [client], sha, calls, args.calls, deltas=args.deltas, pipeline=args.pipeline, seconds=args.seconds
                ),
                "websocket_leases": leases(client, sockets=1000, rounds=20),
                "keys_per_call": len(calls[0].keys),
            }
            if args.redis_benchmark:
                result["redis_benchmark_hot_key"] = redis_benchmark(node.port, sha, calls[0], args.deltas, args.calls)
            return result
        finally:
            node.stop()


def cluster(args: argparse.Namespace) -> dict[str, Any]:
    with RedisCluster(primaries=3, replicas=0).start() as nodes:
        primaries = nodes.primaries()
        clients = [redis.Redis(port=p.port) for p in primaries]
        owner: dict[int, int] = {}
        for start, end, (_host, port, *_), *_ in clients[0].execute_command("CLUSTER SLOTS"):
            index = next(i for i, p in enumerate(primaries) if p.port == int(port))
            for slot in range(int(start), int(end) + 1):
                owner[slot] = index
        sha = ""
        for client in clients:
            sha = client.script_load(args.script_text)
        calls = calls_for(RedisKeys(PREFIX, cluster=True), args.keys, args.partners, time.time())
        for call in calls:
            slots = {key_slot(k.encode()) for k in call.keys}
            if len(slots) != 1:
                raise RuntimeError(f"one call's keys span slots {slots}: {call.keys}")
            call.node = owner[slots.pop()]
        if args.warm:
            warm(clients, sha, calls, args.deltas)
        result = drive(
            clients, sha, calls, args.calls, deltas=args.deltas, pipeline=args.pipeline, seconds=args.seconds
        )
        shares = [n["calls"] / result["calls"] for n in result["nodes"]]
        # The cluster tops out when its busiest primary does: calls/s = per-core rate / largest share.
        result["cluster_calls_per_s"] = round(result["calls_per_s_per_core"] / max(shares))
        result["shares"] = [round(s, 3) for s in shares]
        return result


def gateway_cores(calls_per_s: float) -> dict[str, int]:
    """Gateway cores one Redis (or cluster) carries, by CPU per request (docs/benchmarks.md)."""
    return {
        "public_route_200us": round(calls_per_s / (1e6 / 200)),
        "full_path_300us": round(calls_per_s / (1e6 / 300)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000, help="limiter calls measured (after the warm-up)")
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--partners", type=int, default=100)
    parser.add_argument("--deltas", type=int, default=2, choices=(0, 1, 2, 3), help="usage delta pairs per call")
    parser.add_argument("--pipeline", type=int, default=100, help="calls per round trip (per node)")
    parser.add_argument("--seconds", type=float, default=120.0, help="time bound of each measured run")
    parser.add_argument("--cluster", action="store_true", help="also a 3-primary Redis Cluster")
    parser.add_argument("--redis-benchmark", action="store_true", help="also redis-benchmark on one hot key set")
    parser.add_argument(
        "--no-warm", dest="warm", action="store_false", help="start from empty counters (a quiet key's cost)"
    )
    parser.add_argument(
        "--script",
        type=Path,
        help="another version of ratelimit.lua with the same arguments, for an A/B "
        "(git show 948d601:proxy/gateway/ratelimit.lua > old.lua)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.script_text = args.script.read_text() if args.script else SCRIPT
    sha = hashlib.sha1(args.script_text.encode()).hexdigest()
    result: dict[str, Any] = {"script_sha1": sha, "single": single(args)}
    single_rate = result["single"]["limiter"]["calls_per_s_per_core"]
    result["single"]["gateway_cores"] = gateway_cores(single_rate)
    if args.cluster:
        result["cluster"] = cluster(args)
        result["cluster"]["gateway_cores"] = gateway_cores(result["cluster"]["cluster_calls_per_s"])
    if args.json:
        print(json.dumps(result))
        return
    for line in report(result):
        print(line)


def report(result: dict[str, Any]) -> Iterator[str]:
    single_ = result["single"]
    lim = single_["limiter"]
    yield f"limiter script sha1 {result['script_sha1'][:12]}, {single_['keys_per_call']} keys per call"
    yield (
        f"one Redis: {lim['redis_cpu_us_per_call']} µs Redis CPU per call "
        f"(script alone {lim['script_us_per_call']} µs, {lim['commands_inside_per_call']} commands inside), "
        f"{lim['calls_per_s_per_core']:,} calls/s per core; "
        f"driver reached {lim['driver_calls_per_s']:,}/s with Redis {lim['nodes'][0]['busy']:.0%} busy"
    )
    cores = single_["gateway_cores"]
    yield (
        f"  carries ≈ {cores['public_route_200us']} gateway cores at 200 µs/request, "
        f"{cores['full_path_300us']} at 300 µs"
    )
    if "redis_benchmark_hot_key" in single_:
        rb = single_["redis_benchmark_hot_key"]
        yield f"redis-benchmark, one hot key set: {rb['calls_per_s']:,} calls/s, {rb['redis_cpu_us_per_call']} µs/call"
    ws = single_["websocket_leases"]
    yield (
        f"WebSockets: no Redis per message; {ws['redis_cpu_us_per_lease_renewal']} µs per lease renewal, "
        f"{ws['redis_cpu_us_per_socket_minute_per_lease']} µs per socket-minute per lease key"
    )
    if "cluster" in result:
        c = result["cluster"]
        yield (
            f"3-primary cluster: {c['redis_cpu_us_per_call']} µs per call, shares {c['shares']}, "
            f"≈ {c['cluster_calls_per_s']:,} calls/s at saturation of its busiest primary"
        )
        cores = c["gateway_cores"]
        yield (
            f"  carries ≈ {cores['public_route_200us']} gateway cores at 200 µs/request, "
            f"{cores['full_path_300us']} at 300 µs"
        )


if __name__ == "__main__":
    main()
