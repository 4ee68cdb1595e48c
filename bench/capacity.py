"""Redis capacity: what one limiter call costs Redis, hence how many gateway cores one Redis core
and one 3-primary Redis Cluster carry.

The limiter script in the tree (proxy/gateway/ratelimit.lua) is driven directly, with the KEYS and
ARGV the gateway builds for a real request: ``pipeline.limits_for`` (the keys: plan rate and quota
per partner, the route's rate per key, the usage hash, all under the partner's hash tag on a
cluster) and ``Limiter.script_call`` (the argument layout), ``--batch`` requests per EVALSHA as
the gateway batches the requests of one round trip, plus the usage deltas carried for earlier
responses (``--deltas`` field pairs per request: status class and latency). The population: ``--keys``
API keys spread over ``--partners`` partners on one plan (per-partner minute limit and daily
quota) and one route (per-key second limit); limits are set high so every call is admitted (the
dearer path: everything is counted). Before measuring, every key's counters are filled as a
busy key's are (one call per second over the last minute, through the script itself).

Drivers:
- **pipelined Python** (redis-py + hiredis, ``--pipeline`` EVALSHAs per round trip): varies the
  keys request by request, which ``redis-benchmark`` cannot (its ``__rand_int__`` is drawn per
  placeholder, so one call's keys would not belong together, nor to one cluster slot). Redis CPU
  per request is taken from Redis itself (``INFO cpu`` used_cpu_sys + used_cpu_user before and
  after, over the requests made; ``INFO commandstats`` usec of evalsha), so it does not depend on
  how fast the driver is; requests/s per Redis core = 1e6 / CPU µs per request.
- **redis-benchmark** (``--redis-benchmark``): one key set (a single hot key) at saturation, to
  check the derived figure against Redis actually running flat out.

Also: what WebSocket leases cost (leases.py: no Redis per message; per socket a lease renewal,
ZADD XX + PEXPIREAT per lease key, every LEASE_SECONDS / 3).

Every Redis here is started by this script on free loopback ports (one plain ``redis-server``;
with ``--cluster`` a 3-primary cluster through localcluster/redis_cluster.py) and stopped by PID.

    python -m bench.capacity [--requests 100000] [--keys 1000] [--partners 100] [--batch 1] [--cluster]
                             [--redis-benchmark] [--json]
    python -m bench.capacity --script old.lua     # another version of the script, same layout
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


def command(limiter: Limiter, sha: str, calls: list[Call], now: float, deltas: int) -> list[Any]:
    """One EVALSHA for ``calls`` (one batch, one tag), in the gateway's own layout
    (Limiter.script_call), carrying ``deltas`` usage pairs per request (earlier responses)."""
    carried = [
        (usage_field(call.check.usage_prefix, metric), value)
        for call in calls
        for metric, value in (("2xx", 1), ("lat_ms", 12), ("4xx", 1))[:deltas]
    ]
    keys, args = limiter.script_call(calls[0].check.tag, [call.check for call in calls], carried, now)
    return ["EVALSHA", sha, len(keys), *keys, *args]


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


def batches(calls: list[Call], size: int) -> list[list[Call]]:
    """The calls in groups of up to ``size`` sharing a hash tag: one EVALSHA each, as the
    gateway sends the requests of one round trip (redisbatch.py)."""
    by_tag: dict[str, list[Call]] = {}
    for call in calls:
        by_tag.setdefault(call.check.tag, []).append(call)
    for tag, group in by_tag.items():  # fewer keys than a batch: the same ones again (hot keys)
        by_tag[tag] = (group * size)[: max(size, len(group))]
    return [group[i : i + size] for group in by_tag.values() for i in range(0, len(group), size)]


def drive(
    clients: list[redis.Redis],
    sha: str,
    groups: list[list[Call]],
    total: int,
    *,
    deltas: int,
    pipeline: int,
    seconds: float,
) -> dict[str, Any]:
    """At least ``total`` requests round-robin over the batches, ``pipeline`` EVALSHAs per round
    trip per node; Redis' own CPU and commandstats before and after. Bounded by ``seconds``."""
    limiter = Limiter(cast(Any, None), RedisKeys(PREFIX))
    before = [(cpu_seconds(c), *evalsha_stats(c)) for c in clients]
    started = time.perf_counter()
    made = turn = 0
    per_node = [0] * len(clients)
    while made < total and time.perf_counter() - started < seconds:
        now = time.time()
        pipes = [c.pipeline(transaction=False) for c in clients]
        for _ in range(pipeline * len(clients)):
            group = groups[turn % len(groups)]
            turn += 1
            made += len(group)
            per_node[group[0].node] += len(group)
            pipes[group[0].node].execute_command(*command(limiter, sha, group, now, deltas))
        for pipe in pipes:
            for reply in pipe.execute():
                if any(int(admitted) != 1 for admitted in reply[::5]):
                    raise RuntimeError(f"a request was refused: {reply}")
    wall = time.perf_counter() - started
    nodes = []
    inside = cpu_total = usec_total = 0.0
    evalshas = 0
    for client, (cpu0, calls0, usec0, inside0), requests in zip(clients, before, per_node, strict=True):
        calls1, usec1, inside1 = evalsha_stats(client)
        inside += inside1 - inside0
        cpu = cpu_seconds(client) - cpu0
        cpu_total += cpu
        usec_total += usec1 - usec0
        evalshas += calls1 - calls0
        nodes.append({"requests": requests, "calls": calls1 - calls0, "busy": cpu / wall})
    cpu_per_request = cpu_total * 1e6 / made
    return {
        "requests": made,
        "calls": evalshas,
        "requests_per_call": round(made / evalshas, 2),
        "seconds": round(wall, 2),
        "driver_requests_per_s": round(made / wall),
        "redis_cpu_us_per_request": round(cpu_per_request, 2),
        "script_us_per_request": round(usec_total / made, 2),
        "script_us_per_call": round(usec_total / evalshas, 2),
        "requests_per_s_per_core": round(1e6 / cpu_per_request),
        "commands_inside_per_request": round(inside / made, 2),
        "nodes": nodes,
    }


def warm(clients: list[redis.Redis], sha: str, calls: list[Call], deltas: int) -> None:
    """Fill every key's counters as a busy key's are: one request per second over the last
    minute (the script's own writes, so this holds whatever layout the script uses)."""
    limiter = Limiter(cast(Any, None), RedisKeys(PREFIX))
    now = time.time()
    for step in range(60, 0, -1):
        then = now - step
        pipes = [c.pipeline(transaction=False) for c in clients]
        for call in calls:
            pipes[call.node].execute_command(*command(limiter, sha, [call], then, deltas))
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


def redis_benchmark(port: int, sha: str, group: list[Call], deltas: int, calls: int) -> dict[str, Any]:
    """redis-benchmark at saturation repeating one batch (the same keys every call: hot keys)."""
    limiter = Limiter(cast(Any, None), RedisKeys(PREFIX))
    evalsha = [str(a) for a in command(limiter, sha, group, time.time(), deltas)]
    args = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(calls), "-c", "50", "-P", "16"]
    client = redis.Redis(port=port)
    cpu0 = cpu_seconds(client)
    out = subprocess.run([*args, "--csv", *evalsha], capture_output=True, text=True, timeout=300, check=True).stdout
    cpu = cpu_seconds(client) - cpu0
    rps = float(out.strip().splitlines()[-1].split(",")[1].strip('"')) * len(group)
    return {"requests_per_s": round(rps), "redis_cpu_us_per_request": round(cpu * 1e6 / (calls * len(group)), 2)}


def single(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="apigw-capacity-") as tmp:
        node = RedisNode(Path(tmp), node_timeout_ms=None).start_and_wait()
        try:
            client = redis.Redis(port=node.port)
            sha = client.script_load(args.script_text)
            calls = calls_for(RedisKeys(PREFIX), args.keys, args.partners, time.time())
            if args.warm:
                warm([client], sha, calls, args.deltas)
            groups = batches(calls, args.batch)
            limiter = drive(
                [client], sha, groups, args.requests, deltas=args.deltas, pipeline=args.pipeline, seconds=args.seconds
            )
            result: dict[str, Any] = {
                "limiter": limiter,
                "websocket_leases": leases(client, sockets=1000, rounds=20),
                "keys_per_request": len(calls[0].keys),
            }
            if args.redis_benchmark:
                result["redis_benchmark_hot_key"] = redis_benchmark(
                    node.port, sha, [calls[0]] * args.batch, args.deltas, max(1, args.requests // args.batch)
                )
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
        groups = batches(calls, args.batch)
        result = drive(
            clients, sha, groups, args.requests, deltas=args.deltas, pipeline=args.pipeline, seconds=args.seconds
        )
        shares = [n["requests"] / result["requests"] for n in result["nodes"]]
        # The cluster tops out when its busiest primary does: rate = per-core rate / largest share.
        result["cluster_requests_per_s"] = round(result["requests_per_s_per_core"] / max(shares))
        result["shares"] = [round(s, 3) for s in shares]
        return result


def gateway_cores(requests_per_s: float) -> dict[str, int]:
    """Gateway cores one Redis (or cluster) carries, by CPU per request (docs/benchmarks.md)."""
    return {
        "public_route_200us": round(requests_per_s / (1e6 / 200)),
        "full_path_300us": round(requests_per_s / (1e6 / 300)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000, help="requests measured (after the warm-up)")
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--partners", type=int, default=100)
    parser.add_argument("--deltas", type=int, default=2, choices=(0, 1, 2, 3), help="usage delta pairs per request")
    parser.add_argument(
        "--batch", type=int, default=1, help="requests per EVALSHA (a gateway's batch; 1 = a quiet gateway)"
    )
    parser.add_argument("--pipeline", type=int, default=100, help="EVALSHAs per round trip (per node)")
    parser.add_argument("--seconds", type=float, default=120.0, help="time bound of each measured run")
    parser.add_argument("--cluster", action="store_true", help="also a 3-primary Redis Cluster")
    parser.add_argument("--redis-benchmark", action="store_true", help="also redis-benchmark on one hot key set")
    parser.add_argument(
        "--no-warm", dest="warm", action="store_false", help="start from empty counters (a quiet key's cost)"
    )
    parser.add_argument(
        "--script",
        type=Path,
        help="another version of ratelimit.lua with the same argument layout, for an A/B "
        "(git show <commit>:proxy/gateway/ratelimit.lua > old.lua)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.script_text = args.script.read_text() if args.script else SCRIPT
    sha = hashlib.sha1(args.script_text.encode()).hexdigest()
    result: dict[str, Any] = {"script_sha1": sha, "single": single(args)}
    single_rate = result["single"]["limiter"]["requests_per_s_per_core"]
    result["single"]["gateway_cores"] = gateway_cores(single_rate)
    if args.cluster:
        result["cluster"] = cluster(args)
        result["cluster"]["gateway_cores"] = gateway_cores(result["cluster"]["cluster_requests_per_s"])
    if args.json:
        print(json.dumps(result))
        return
    for line in report(result):
        print(line)


def report(result: dict[str, Any]) -> Iterator[str]:
    single_ = result["single"]
    lim = single_["limiter"]
    yield (
        f"limiter script sha1 {result['script_sha1'][:12]}, {single_['keys_per_request']} keys per request, "
        f"{lim['requests_per_call']} requests per EVALSHA"
    )
    yield (
        f"one Redis: {lim['redis_cpu_us_per_request']} µs Redis CPU per request "
        f"(script alone {lim['script_us_per_request']} µs, {lim['script_us_per_call']} µs per EVALSHA, "
        f"{lim['commands_inside_per_request']} commands inside), {lim['requests_per_s_per_core']:,} requests/s "
        f"per core; driver reached {lim['driver_requests_per_s']:,}/s with Redis {lim['nodes'][0]['busy']:.0%} busy"
    )
    cores = single_["gateway_cores"]
    yield (
        f"  carries ≈ {cores['public_route_200us']} gateway cores at 200 µs/request, "
        f"{cores['full_path_300us']} at 300 µs"
    )
    if "redis_benchmark_hot_key" in single_:
        rb = single_["redis_benchmark_hot_key"]
        yield (
            f"redis-benchmark, one hot key set: {rb['requests_per_s']:,} requests/s, "
            f"{rb['redis_cpu_us_per_request']} µs/request"
        )
    ws = single_["websocket_leases"]
    yield (
        f"WebSockets: no Redis per message; {ws['redis_cpu_us_per_lease_renewal']} µs per lease renewal, "
        f"{ws['redis_cpu_us_per_socket_minute_per_lease']} µs per socket-minute per lease key"
    )
    if "cluster" in result:
        c = result["cluster"]
        yield (
            f"3-primary cluster: {c['redis_cpu_us_per_request']} µs per request ({c['requests_per_call']} per "
            f"EVALSHA), shares {c['shares']}, ≈ {c['cluster_requests_per_s']:,} requests/s at saturation of its "
            "busiest primary"
        )
        cores = c["gateway_cores"]
        yield (
            f"  carries ≈ {cores['public_route_200us']} gateway cores at 200 µs/request, "
            f"{cores['full_path_300us']} at 300 µs"
        )


if __name__ == "__main__":
    main()
