"""A/B: alternate measured runs between variants of an app, to test one change at a time.

    python -m bench.ab bench.gateway_app:app mymod:app            # public route (d)
    python -m bench.ab --full apigw.asgi:application "apigw.asgi:application|LOG_ACCESS=false"
    python -m bench.ab --full apigw.asgi:application granian:apigw.asgi:application

A variant is ``[granian:]module:app[|NAME=VALUE,...]``; ``--path DIR`` puts experiment modules
(e.g. one that monkeypatches a hot function, then imports the app) on the servers' PYTHONPATH.
To compare two versions of the code, export the old one (``git archive BASE | tar -x -C /tmp/base``)
and load it through an experiment module on ``--path``: ``/tmp/ab/oldtree.py`` puts /tmp/base
first on ``sys.path``, drops the project's modules already imported (uvicorn imports the edge
protocol before the app) and then imports the app from the old tree. PYTHONPATH alone is not
enough: uvicorn puts its working directory (this checkout) first on ``sys.path`` (``--app-dir``).

    # /tmp/ab/oldtree.py
    import sys
    sys.path.insert(0, "/tmp/base")
    for name in [m for m in sys.modules if m.split(".")[0] in ("proxy", "apigw", "bench")]:
        del sys.modules[name]
    from apigw.asgi import application          # or: from bench.gateway_app import app

    python -m bench.ab --full --path /tmp/ab oldtree:application apigw.asgi:application

Each variant reports requests/s and the server's own CPU per request (its process tree's
utime + stime from /proc over the measured run / requests answered): on a shared machine the CPU
figure moves much less than requests/s, so it is the one to compare.
Every variant runs on the server core against the same upstream, each with its own Redis; runs
are interleaved and the ones other processes disturbed are left out, as in bench.bench.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys

from bench import cpuwatch
from bench.bench import ROOT, Bench, Layout, Settings
from bench.procs import http_get, run_wrk
from bench.report import DISTURBED


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--full", action="store_true", help="full-path fixture (API key, limits, logs)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--path", default="", help="extra PYTHONPATH entries for the servers")
    args = parser.parse_args()
    bench = Bench(Settings.from_env(), Layout.detect())
    lay = bench.layout
    ports: dict[str, int] = {}
    pids: dict[str, int] = {}
    headers: dict[str, dict[str, str]] = {}
    try:
        bench.upstream_port, _ = bench.nginx_static("upstream", lay.aux)
        for i, variant in enumerate(args.variants):
            app, _, extra = variant.partition("|")
            kind = "granian" if app.startswith("granian:") else "uvicorn"
            app = app.removeprefix("granian:")
            url = bench.redis_server(f"redis-{i}")
            env = bench.gateway_env(url)
            headers[variant] = {}
            if args.full:
                fixture = bench.full_fixture(url, f"apigw-ab{i}:")
                if fixture is None:
                    print("the full path is not available yet", file=sys.stderr)
                    return 1
                env.update(fixture.env)
                headers[variant] = fixture.headers
            env["PYTHONPATH"] = ":".join(p for p in (str(ROOT), args.path) if p)
            env.update(dict(kv.split("=", 1) for kv in extra.split(",") if kv))
            ports[variant], proc = bench.app_server(f"variant-{i}", app, env=env, cpus=lay.server, kind=kind)
            pids[variant] = proc.pid
            status, body = http_get(ports[variant], headers=headers[variant])
            if status != 200:
                print(f"{variant} answered {status}: {body[:200]!r}", file=sys.stderr)
                return 1
        results: dict[str, list[float]] = {v: [] for v in args.variants}
        cpu: dict[str, list[float]] = {v: [] for v in args.variants}
        for _ in range(args.rounds):
            for variant in args.variants:
                if bench.settings.quiet_wait > 0:
                    cpuwatch.wait_quiet(max_wait=bench.settings.quiet_wait)
                run_wrk(ports[variant], seconds=1, connections=50, headers=headers[variant], cpus=lay.client)
                start = cpuwatch.Snapshot.take()
                server_start = cpuwatch.tree_seconds(pids[variant])
                result = run_wrk(
                    ports[variant], seconds=args.seconds, connections=50, headers=headers[variant], cpus=lay.client
                )
                server_cpu = cpuwatch.tree_seconds(pids[variant]) - server_start
                foreign = cpuwatch.foreign_cores(start, cpuwatch.Snapshot.take())
                if result.ok and result.requests:
                    # CPU per request is kept even from disturbed runs: other processes slow the
                    # server down, they do not add to its own CPU time (much: caches, SMT).
                    cpu[variant].append(server_cpu * 1e6 / result.requests)
                if result.ok and foreign <= DISTURBED:
                    results[variant].append(result.rps)
                else:
                    print(f"  left out: {variant} (errors or {foreign:.2f} other cores busy)", file=sys.stderr)
        base = statistics.median(results[args.variants[0]]) if results[args.variants[0]] else 0.0
        base_cpu = statistics.median(cpu[args.variants[0]]) if cpu[args.variants[0]] else 0.0
        for variant, values in results.items():
            cpu_values = cpu[variant]
            cpu_text = "no CPU figure"
            if cpu_values:
                cpu_median = statistics.median(cpu_values)
                cpu_text = (
                    f"CPU {cpu_median:6.1f} µs/request ({min(cpu_values):.1f}–{max(cpu_values):.1f},"
                    f" n={len(cpu_values)}) {cpu_median / base_cpu - 1:+.1%}"
                    if base_cpu
                    else ""
                )
            if not values:
                print(f"{variant:50} no undisturbed run for requests/s; {cpu_text}")
                continue
            median = statistics.median(values)
            change = f"{median / base - 1:+.1%}" if base else ""
            print(
                f"{variant:50} {median:8,.0f} rps ({min(values):,.0f}–{max(values):,.0f}, n={len(values)}) {change}"
                f"  {cpu_text}"
            )
        return 0
    finally:
        bench.stop_all()
        shutil.rmtree(bench.tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
