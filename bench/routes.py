"""Route matching cost: ``RouteTable.match`` with 10, 1,000 and 10,000 routes, in process.

Route mix per resource (ten routes each): plain prefixes on two API versions, an exact path, two
regex routes with path parameters, a header-matched admin prefix, a host-bound prefix, a
query-matched search prefix, a wildcard-host route and a method-restricted legacy prefix with a
priority. Requests hit each kind, plus 404s and 405s. One timer pair around each call
(``perf_counter_ns``); the timer's own cost is measured and reported beside the figures.

The "crowded" table puts 10 % of the routes as regexes under ONE literal prefix: the worst case for
an index by prefix, since every request under that prefix must try them in order.

    python -m bench.routes [--json] [--iterations N]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from typing import Any, cast

from proxy.gateway.errors import GatewayError
from proxy.gateway.routing import Route, RouteTable
from proxy.gateway.spec import RouteSpec

SIZES = (10, 1_000, 10_000)


def route_specs(n: int) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = []
    for i in range(n):
        res, kind = divmod(i, 10)
        base = f"/api/v1/res{res}"
        spec: dict[str, Any] = {"id": i, "name": f"r{i}", "upstream": "u", "path_type": "prefix"}
        if kind == 0:
            spec["path"] = base
        elif kind == 1:
            spec.update(path=f"/api/v2/res{res}", methods=["GET"])
        elif kind == 2:
            spec.update(path_type="exact", path=f"{base}/status")
        elif kind == 3:
            spec.update(path_type="regex", path=rf"{base}/(?P<id>[0-9a-f]{{8}})/events")
        elif kind == 4:
            spec.update(path_type="regex", path=rf"/api/v2/res{res}/(?P<id>[^/]+)(?:/.*)?", rewrite="/v2/{id}{path}")
        elif kind == 5:
            spec.update(path=f"{base}/admin", headers=[{"name": "X-Role", "match": "exact", "value": "ops"}])
        elif kind == 6:
            spec.update(path=base, hosts=[f"p{res}.partners.example.com"])
        elif kind == 7:
            spec.update(path=f"{base}/search", query=[{"name": "q", "match": "present"}])
        elif kind == 8:
            spec.update(path="/api", hosts=[f"*.tenant{res}.example.com"])
        else:
            spec.update(path=f"/legacy/res{res}", methods=["GET", "POST"], priority=10, strip_prefix=True)
        specs.append(spec)
    return specs


def crowded_specs(n: int) -> list[dict[str, Any]]:
    """Like ``route_specs`` but every regex route shares the literal prefix ``/api/v1/things``."""
    specs = route_specs(n)
    for spec in specs:
        if spec["path_type"] == "regex":
            i = spec["id"]
            spec.update(path=rf"/api/v1/things/(?P<id>[0-9]+)/action{i}", rewrite="")
    return specs


Request = tuple[str, str, str, dict[str, list[str]], bytes]


def requests_for(n: int, count: int, *, crowded: bool = False, seed: int = 7) -> list[Request]:
    rng = random.Random(seed)
    resources = max(1, n // 10)
    out: list[Request] = []
    regex_ids = [i for i in range(n) if i % 10 in (3, 4)]
    for _ in range(count):
        r = rng.randrange(resources)
        base = f"/api/v1/res{r}"
        choice = rng.randrange(10)
        if choice == 0:
            out.append(("api.example.com", f"{base}/items/42", "GET", {}, b""))
        elif choice == 1:
            out.append(("api.example.com", f"{base}/0123abcd/events", "GET", {}, b""))
        elif choice == 2:
            out.append(("api.example.com", f"{base}/status", "GET", {}, b""))
        elif choice == 3:
            out.append(("api.example.com", f"/api/v2/res{r}/abc/programs", "POST", {}, b""))
        elif choice == 4:
            out.append((f"p{r}.partners.example.com", f"{base}/x", "GET", {}, b""))
        elif choice == 5:
            out.append(("api.example.com", f"{base}/admin/users", "GET", {"x-role": ["ops"]}, b""))
        elif choice == 6:
            out.append(("api.example.com", f"{base}/search", "GET", {}, b"q=oven&page=2"))
        elif choice == 7:
            out.append((f"eu.tenant{r}.example.com", "/api/other", "GET", {}, b""))
        elif choice == 8:
            out.append(("api.example.com", "/nothing/here", "GET", {}, b""))  # 404
        else:
            out.append(("api.example.com", f"/legacy/res{r}/x", "DELETE", {}, b""))  # 405
        if crowded and choice == 1 and regex_ids:
            i = rng.choice(regex_ids)
            out[-1] = ("api.example.com", f"/api/v1/things/42/action{i}", "GET", {}, b"")
    return out


def _timer_overhead_ns(samples: int = 100_000) -> int:
    clock = time.perf_counter_ns
    costs = []
    for _ in range(samples):
        t0 = clock()
        costs.append(clock() - t0)
    return int(statistics.median(costs))


def measure(specs: list[dict[str, Any]], requests: list[Request], iterations: int) -> dict[str, Any]:
    started = time.perf_counter()
    table = RouteTable(Route(cast(RouteSpec, s)) for s in specs)
    build_ms = (time.perf_counter() - started) * 1000
    clock = time.perf_counter_ns
    match = table.match
    samples: list[int] = []
    outcomes = {"matched": 0, "error": 0}
    for _ in range(1000):  # warm caches (re's compiled patterns, dict lookups)
        host, path, method, headers, query = requests[_ % len(requests)]
        try:
            match(host=host, path=path, method=method, headers=headers, query_string=query)
        except GatewayError:
            pass
    for i in range(iterations):
        host, path, method, headers, query = requests[i % len(requests)]
        t0 = clock()
        try:
            match(host=host, path=path, method=method, headers=headers, query_string=query)
            outcome = "matched"
        except GatewayError:
            outcome = "error"
        samples.append(clock() - t0)
        outcomes[outcome] += 1
    samples.sort()

    def pct(p: float) -> float:
        return samples[min(len(samples) - 1, int(p * len(samples)))] / 1000

    return {
        "routes": len(specs),
        "iterations": iterations,
        "p50_us": round(pct(0.50), 2),
        "p90_us": round(pct(0.90), 2),
        "p99_us": round(pct(0.99), 2),
        "p999_us": round(pct(0.999), 2),
        "mean_us": round(statistics.fmean(samples) / 1000, 2),
        "build_ms": round(build_ms, 1),
        "matched": outcomes["matched"],
        "errors": outcomes["error"],
    }


def run(iterations: int) -> dict[str, Any]:
    gc.collect()
    result: dict[str, Any] = {"timer_overhead_ns": _timer_overhead_ns(), "realistic": [], "crowded": []}
    for n in SIZES:
        result["realistic"].append(measure(route_specs(n), requests_for(n, 5000), iterations))
    n = SIZES[-1]
    result["crowded"].append(measure(crowded_specs(n), requests_for(n, 5000, crowded=True), iterations))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    result = run(args.iterations)
    if args.json:
        json.dump(result, sys.stdout)
        return
    print(f"timer overhead ≈ {result['timer_overhead_ns']} ns per measurement (included below)")
    for label in ("realistic", "crowded"):
        for row in result[label]:
            print(
                f"{label:9} {row['routes']:>6} routes: p50 {row['p50_us']:6.2f} µs  p99 {row['p99_us']:6.2f} µs"
                f"  p99.9 {row['p999_us']:7.2f} µs  mean {row['mean_us']:6.2f} µs"
                f"  (table built in {row['build_ms']} ms)"
            )


if __name__ == "__main__":
    main()
