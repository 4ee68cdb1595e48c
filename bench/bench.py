"""`make bench`: every scenario of issue 4, interleaved over rounds, one table, JSON results.

Environment: BENCH_DURATION (seconds per measurement, default 5), BENCH_ROUNDS (3), BENCH_WARMUP
(seconds of unmeasured load before each measurement, 1), BENCH_CONNECTIONS (50),
BENCH_SCENARIOS (comma list of keys to run, default all: a,b,c,c-httpx,d,d-granian,e,e-granian,f,
g-direct,g-public,g-full), BENCH_ROUTE_ITERATIONS (200000; 0 skips the route benchmark), BENCH_NO_NGINX=1
(use the ASGI responder as upstream, no (b)), BENCH_QUIET_WAIT (seconds to wait at most, before
each measurement, for other processes on the machine to go quiet; 10, 0 = don't wait).

    python -m bench.bench                 # everything
    python -m bench.bench --profile d     # py-spy profile of one scenario's server under load
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import cpuwatch, redisstats, report
from bench.full_path import FullPath, full_path, unavailable_reason
from bench.procs import Proc, free_port, http_get, pinned, run_wrk, wait_http, wait_port
from bench.upstream import BODY, nginx_args, nginx_binary, proxy_conf, static_conf

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ALL_SCENARIOS = tuple(report.TITLES)

# The gateway's own HTTP protocol (proxy/gateway/edge.py); the bare passthrough keeps httptools.
EDGE = "proxy.gateway.edge:EdgeProtocol"


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    duration: float
    rounds: int
    warmup: float
    connections: int
    scenarios: tuple[str, ...]
    route_iterations: int
    use_nginx: bool
    quiet_wait: float  # seconds to wait at most for the rest of the machine to go quiet

    @classmethod
    def from_env(cls) -> Settings:
        wanted = tuple(s.strip() for s in os.environ.get("BENCH_SCENARIOS", "").split(",") if s.strip())
        unknown = set(wanted) - set(ALL_SCENARIOS)
        if unknown:
            raise SystemExit(
                f"BENCH_SCENARIOS: unknown {', '.join(sorted(unknown))}; known: {', '.join(ALL_SCENARIOS)}"
            )
        return cls(
            duration=env_float("BENCH_DURATION", 5.0),
            rounds=int(env_float("BENCH_ROUNDS", 3)),
            warmup=env_float("BENCH_WARMUP", 1.0),
            connections=int(env_float("BENCH_CONNECTIONS", 50)),
            scenarios=wanted or ALL_SCENARIOS,
            route_iterations=int(env_float("BENCH_ROUTE_ITERATIONS", 200_000)),
            quiet_wait=env_float("BENCH_QUIET_WAIT", 10.0),
            use_nginx=os.environ.get("BENCH_NO_NGINX", "") not in ("1", "true") and nginx_binary() is not None,
        )


@dataclass(frozen=True)
class Layout:
    """Which CPUs run what. The server under test gets a core of its own; the load generator,
    the upstream and Redis share another."""

    client: str | None
    server: str | None
    pair: str | None  # (f)'s two workers
    aux: str | None  # upstream nginx and Redis
    note: str

    @classmethod
    def detect(cls) -> Layout:
        cpus = sorted(os.sched_getaffinity(0))
        if shutil.which("taskset") is None or len(cpus) < 2:
            return cls(None, None, None, None, "no pinning (taskset missing or a single CPU)")
        c = [str(x) for x in cpus]
        if len(c) >= 4:
            return cls(c[0], c[1], f"{c[1]},{c[2]}", c[3], "wrk alone; upstream and Redis on their own core")
        if len(c) == 3:
            return cls(c[0], c[1], f"{c[1]},{c[2]}", c[0], "upstream and Redis share wrk's core")
        # Two workers spread over both CPUs would share one with wrk, nginx and Redis, and their
        # CPU per request would measure that contention (1.23 × (e) on 2026-11-30), not what a
        # second worker costs. On the server's core alone, (f) is (e) with two processes: its CPU
        # per request against (e)'s is the scale-out overhead; its throughput says nothing here.
        return cls(
            c[0],
            c[1],
            c[1],
            c[0],
            "2 CPUs: upstream and Redis share wrk's core; (f)'s 2 workers share the server's core, so "
            "(f) shows the CPU per request of 2 workers, not their throughput (that needs a core each)",
        )


@dataclass
class Scenario:
    key: str
    port: int | None = None
    connections: int = 50
    headers: dict[str, str] = field(default_factory=dict)
    redis_url: str | None = None
    server: Proc | None = None
    unavailable: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    monitor: dict[str, Any] | None = None  # Redis commands by origin, from the MONITOR pass


class Bench:
    def __init__(self, settings: Settings, layout: Layout) -> None:
        self.settings = settings
        self.layout = layout
        self.tmp = Path(tempfile.mkdtemp(prefix="apigw-bench-"))
        self.procs: list[Proc] = []
        self.scenarios: dict[str, Scenario] = {}
        self.upstream_port: int | None = None
        self._full: FullPath | None = None
        self._full_reason: str | None = None

    # -- processes ------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], cpus: str | None, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, pinned(args, cpus), self.tmp / f"{name}.log", env=env or {})
        proc.start(ROOT)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def nginx_static(self, name: str, cpus: str | None) -> tuple[int, Proc]:
        binary = nginx_binary()
        assert binary is not None
        port, prefix = free_port(), self.tmp / name
        proc = self._spawn(name, nginx_args(binary, prefix, static_conf(prefix, port)), cpus)
        wait_http(port, proc)
        return port, proc

    def responder(self, name: str, cpus: str | None) -> tuple[int, Proc]:
        port = free_port()
        proc = self._spawn(name, self._uvicorn_args("bench.responder:app", port), cpus)
        wait_http(port, proc)
        return port, proc

    def redis_server(self, name: str) -> str:
        """A Redis of this scenario's own, so INFO commandstats counts only its gateway."""
        binary = shutil.which("redis-server")
        if binary is None:
            return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        port = free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.tmp), "--loglevel", "warning"]
        proc = self._spawn(name, args, self.layout.aux)
        wait_port(port, proc)
        return f"redis://127.0.0.1:{port}/0"

    @staticmethod
    def _uvicorn_args(app: str, port: int, workers: int = 1, http: str = "httptools") -> list[str]:
        args = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
        # The flags production runs with (Dockerfile, runplatform), for every Python server alike;
        # the gateway's scenarios run its edge protocol (framing limits), as the image does.
        args += ["--loop", "uvloop", "--http", http, "--lifespan", "on", "--no-access-log"]
        args += ["--no-server-header", "--no-date-header", "--no-proxy-headers"]
        args += ["--log-level", "warning", "--timeout-graceful-shutdown", "3"]
        return args + (["--workers", str(workers)] if workers > 1 else [])

    @staticmethod
    def _granian_args(app: str, port: int) -> list[str]:
        granian = str(Path(sys.executable).with_name("granian"))
        args = [granian, "--interface", "asgi", "--loop", "uvloop", "--workers", "1", "--host", "127.0.0.1"]
        return args + ["--port", str(port), "--no-access-log", "--log-level", "warning", app]

    def app_server(
        self,
        name: str,
        app: str,
        *,
        env: dict[str, str],
        cpus: str | None,
        kind: str = "uvicorn",
        workers: int = 1,
        http: str = EDGE,
    ) -> tuple[int, Proc]:
        port = free_port()
        args = self._granian_args(app, port) if kind == "granian" else self._uvicorn_args(app, port, workers, http)
        proc = self._spawn(name, args, cpus, env)
        wait_http(port, proc, timeout=60)
        return port, proc

    # -- scenarios ------------------------------------------------------------------------
    def wanted(self, *keys: str) -> bool:
        return any(k in self.settings.scenarios for k in keys)

    def add(self, key: str, **kwargs: Any) -> Scenario:
        scenario = Scenario(key, connections=self.settings.connections, **kwargs)
        if key.startswith("g-"):
            scenario.connections = 1
        self.scenarios[key] = scenario
        return scenario

    def unavailable(self, key: str, reason: str) -> None:
        if key in self.settings.scenarios:
            self.add(key, unavailable=reason)

    def _try(self, keys: tuple[str, ...], start: Any) -> None:
        """Run ``start``; on failure mark its scenarios n/a and carry on with the others."""
        try:
            start()
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
            print(f"  ! {', '.join(keys)} not available: {exc}", file=sys.stderr)
            for key in keys:
                if key in self.settings.scenarios and key not in self.scenarios:
                    self.add(key, unavailable=reason)
                elif key in self.scenarios:
                    self.scenarios[key].unavailable = reason

    def gateway_env(self, redis_url: str) -> dict[str, str]:
        assert self.upstream_port is not None
        return {
            "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{self.upstream_port}",
            "REDIS_URL": redis_url,
            "REDIS_PREFIX": "apigw-bench:",
            "LOG_LEVEL": "warning",
            "PYTHONPATH": str(ROOT),
        }

    def start(self) -> None:
        s, lay = self.settings, self.layout
        print(f"starting servers (logs in {self.tmp})", file=sys.stderr)
        # The upstream every proxy forwards to, on the auxiliary core.
        if s.use_nginx:
            self.upstream_port, _ = self.nginx_static("upstream", lay.aux)
        else:
            self.upstream_port, _ = self.responder("upstream", lay.aux)
        if self.wanted("g-direct"):
            self.add("g-direct", port=self.upstream_port)
        if self.wanted("a"):

            def start_a() -> None:
                port, proc = (
                    self.nginx_static("upstream-a", lay.server)
                    if s.use_nginx
                    else self.responder("upstream-a", lay.server)
                )
                self.add("a", port=port, server=proc)

            self._try(("a",), start_a)
        if self.wanted("b"):
            if not s.use_nginx:
                self.unavailable("b", "no nginx: not installed, or BENCH_NO_NGINX=1")
            else:

                def start_b() -> None:
                    binary = nginx_binary()
                    assert binary is not None and self.upstream_port is not None
                    port, prefix = free_port(), self.tmp / "nginx-proxy"
                    conf = proxy_conf(prefix, port, self.upstream_port)
                    proc = self._spawn("nginx-proxy", nginx_args(binary, prefix, conf), lay.server)
                    wait_http(port, proc)
                    self.add("b", port=port, server=proc)

                self._try(("b",), start_b)
        if self.wanted("c"):

            def start_c() -> None:
                env = self.gateway_env("")
                port, proc = self.app_server(
                    "passthrough", "bench.passthrough:app", env=env, cpus=lay.server, http="httptools"
                )
                self.add("c", port=port, server=proc)

            self._try(("c",), start_c)
        if self.wanted("c2"):

            def start_c2() -> None:
                env = self.gateway_env("")
                port, proc = self.app_server(
                    "passthrough-h1", "bench.passthrough_h1:app", env=env, cpus=lay.server, http="httptools"
                )
                self.add("c2", port=port, server=proc)

            self._try(("c2",), start_c2)
        if self.wanted("c-httpx"):

            def start_c_httpx() -> None:
                env = self.gateway_env("")
                port, proc = self.app_server(
                    "passthrough-httpx", "bench.passthrough_httpx:app", env=env, cpus=lay.server, http="httptools"
                )
                self.add("c-httpx", port=port, server=proc)

            self._try(("c-httpx",), start_c_httpx)
        if self.wanted("d", "g-public"):

            def start_d() -> None:
                url = self.redis_server("redis-d")
                port, proc = self.app_server(
                    "gateway-d", "bench.gateway_app:app", env=self.gateway_env(url), cpus=lay.server
                )
                if self.wanted("d"):
                    self.add("d", port=port, server=proc, redis_url=url)
                if self.wanted("g-public"):
                    self.add("g-public", port=port, server=proc, redis_url=url)

            self._try(("d", "g-public"), start_d)
        if self.wanted("d-granian"):

            def start_dg() -> None:
                url = self.redis_server("redis-d-granian")
                env = self.gateway_env(url)
                port, proc = self.app_server(
                    "gateway-d-granian", "bench.gateway_app:app", env=env, cpus=lay.server, kind="granian"
                )
                self.add("d-granian", port=port, server=proc, redis_url=url)

            self._try(("d-granian",), start_dg)
        self.start_full_path()

    def full_fixture(self, redis_url: str, prefix: str) -> FullPath | None:
        assert self.upstream_port is not None
        workdir = self.tmp / f"full-{prefix.strip(':')}"
        workdir.mkdir(exist_ok=True)
        return full_path(
            workdir, upstream_url=f"http://127.0.0.1:{self.upstream_port}", redis_url=redis_url, redis_prefix=prefix
        )

    def start_full_path(self) -> None:
        keys = tuple(k for k in ("e", "e-granian", "f", "g-full") if self.wanted(k))
        reason = unavailable_reason()
        if reason is not None:
            for key in keys:
                self.unavailable(key, reason)
            return
        lay = self.layout
        variants = (
            ("e", ("e", "g-full"), "uvicorn", 1, lay.server),
            ("e-granian", ("e-granian",), "granian", 1, lay.server),
            ("f", ("f",), "uvicorn", 2, lay.pair),
        )
        for name, served, kind, workers, cpus in variants:
            wanted = tuple(k for k in served if self.wanted(k))
            if not wanted:
                continue

            def start_variant(
                name: str = name,
                wanted: tuple[str, ...] = wanted,
                kind: str = kind,
                workers: int = workers,
                cpus: str | None = cpus,
            ) -> None:
                url = self.redis_server(f"redis-{name}")
                fixture = self.full_fixture(url, f"apigw-bench-{name}:")
                if fixture is None:
                    raise RuntimeError(unavailable_reason() or "full path not available")
                env = {**fixture.env, "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{self.upstream_port}"}
                port, proc = self.app_server(
                    f"gateway-{name}", fixture.app, env=env, cpus=cpus, kind=kind, workers=workers
                )
                for key in wanted:
                    self.add(key, port=port, server=proc, redis_url=url, headers=fixture.headers)

            self._try(wanted, start_variant)

    def check(self) -> None:
        """One request per scenario before any load: the reply must be the upstream's body."""
        for scenario in self.scenarios.values():
            if scenario.unavailable or scenario.port is None:
                continue
            try:
                status, body = http_get(scenario.port, headers=scenario.headers)
            except OSError as exc:
                scenario.unavailable = f"no answer: {exc}"
                continue
            if status != 200 or body != BODY:
                scenario.unavailable = f"answered {status}: {body[:80]!r}"
                print(f"  ! {scenario.key}: {scenario.unavailable}", file=sys.stderr)

    # -- measuring ------------------------------------------------------------------------
    def measure(self, scenario: Scenario, round_no: int) -> dict[str, Any]:
        assert scenario.port is not None
        s = self.settings
        quiet_before = cpuwatch.wait_quiet(max_wait=s.quiet_wait) if s.quiet_wait > 0 else None
        if s.warmup > 0:
            run_wrk(
                scenario.port,
                seconds=s.warmup,
                connections=scenario.connections,
                headers=scenario.headers,
                cpus=self.layout.client,
            )
        before = redisstats.command_counts(scenario.redis_url) if scenario.redis_url else None
        redis_cpu = redisstats.cpu(scenario.redis_url) if scenario.redis_url else None
        server_cpu = cpuwatch.tree_seconds(scenario.server.pid) if scenario.server is not None else None
        cpu_start = cpuwatch.Snapshot.take()
        result = run_wrk(
            scenario.port,
            seconds=s.duration,
            connections=scenario.connections,
            headers=scenario.headers,
            cpus=self.layout.client,
        )
        if server_cpu is not None and scenario.server is not None:
            server_cpu = cpuwatch.tree_seconds(scenario.server.pid) - server_cpu
        foreign = round(cpuwatch.foreign_cores(cpu_start, cpuwatch.Snapshot.take()), 3)
        row: dict[str, Any] = {
            "round": round_no,
            "ok": result.ok,
            # Cores the rest of the machine used during the run; above DISTURBED the run is
            # left out of the medians when undisturbed rounds exist.
            "foreign_cores": foreign,
            "foreign_cores_before": round(quiet_before, 3) if quiet_before is not None else None,
            "disturbed": foreign > report.DISTURBED,
            "rps": result.rps,
            "requests": result.requests,
            "seconds": result.seconds,
            "p50_ms": result.p50_ms,
            "p75_ms": result.p75_ms,
            "p90_ms": result.p90_ms,
            "p99_ms": result.p99_ms,
            "non_2xx": result.non_2xx,
            "socket_errors": result.socket_errors,
        }
        if server_cpu is not None and result.requests:
            # The server's own CPU (its process tree, from /proc) per request wrk saw answered:
            # steadier than requests/s on a shared machine, and what a second worker must not raise.
            row["server_cpu_us_per_request"] = round(server_cpu * 1e6 / result.requests, 1)
        if redis_cpu is not None and scenario.redis_url:
            row.update(
                {
                    f"redis_{k}_per_request": v
                    for k, v in redisstats.cpu_per_request(
                        redis_cpu, redisstats.cpu(scenario.redis_url), result.requests
                    ).items()
                }
            )
        if before is not None and scenario.redis_url:
            executed = redisstats.delta(before, redisstats.command_counts(scenario.redis_url))
            row["redis_executed"] = executed
            row["redis_ops_per_request"] = (
                round(sum(executed.values()) / result.requests, 4) if result.requests else None
            )
        if not result.ok:
            row["wrk_output"] = result.raw
        return row

    def run_rounds(self) -> None:
        order = [k for k in ALL_SCENARIOS if k in self.scenarios and not self.scenarios[k].unavailable]
        for round_no in range(1, self.settings.rounds + 1):
            for key in order:
                scenario = self.scenarios[key]
                if scenario.server is not None and not scenario.server.alive():
                    scenario.unavailable = f"server exited:\n{scenario.server.log_tail(5)}"
                    continue
                row = self.measure(scenario, round_no)
                scenario.runs.append(row)
                redis_note = (
                    f"  Redis ops/req {row['redis_ops_per_request']:.3f}"
                    f"  Redis CPU {row.get('redis_used_cpu_us_per_request', 0):.1f} µs/req"
                    if row.get("redis_ops_per_request") is not None
                    else ""
                )
                if row.get("server_cpu_us_per_request") is not None:
                    redis_note = f"  CPU {row['server_cpu_us_per_request']:6.1f} µs/req" + redis_note
                flag = "" if row["ok"] else f"  ! non-2xx {row['non_2xx']}, socket errors {row['socket_errors']}"
                if row["disturbed"]:
                    flag += f"  ! other processes used {row['foreign_cores']:.2f} cores meanwhile"
                print(
                    f"  round {round_no} {key:10} {row['rps']:>10,.0f} rps  p50 {row['p50_ms']:7.2f} ms"
                    f"  p99 {row['p99_ms']:7.2f} ms{redis_note}{flag}",
                    file=sys.stderr,
                )

    def redis_accounting(self) -> None:
        """Commands the gateway sends vs. commands its scripts run, per request (MONITOR pass)."""
        seconds = min(3.0, self.settings.duration)
        for key in ("d", "d-granian", "e", "e-granian", "f"):
            scenario = self.scenarios.get(key)
            if scenario is None or scenario.unavailable or not scenario.redis_url or scenario.port is None:
                continue
            port = scenario.port

            def load(scenario: Scenario = scenario, port: int = port) -> int:
                result = run_wrk(
                    port,
                    seconds=seconds,
                    connections=scenario.connections,
                    headers=scenario.headers,
                    cpus=self.layout.client,
                )
                return result.requests

            scenario.monitor = redisstats.monitor_pass(
                scenario.redis_url, self.tmp, load, idle_seconds=seconds, in_flight=scenario.connections
            )
            if scenario.monitor:
                m = scenario.monitor
                print(
                    f"  MONITOR {key:10} {m['per_request']:.3f} commands/request net of timers"
                    f" (sent under load {m['sent']}, idle {m['idle_sent']}),"
                    f" {m['in_lua_per_request']:.1f} run inside Lua per request",
                    file=sys.stderr,
                )


def route_benchmark(iterations: int, cpus: str | None) -> dict[str, Any] | None:
    if iterations <= 0:
        return None
    args = pinned([sys.executable, "-m", "bench.routes", "--json", "--iterations", str(iterations)], cpus)
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        print(f"  ! route benchmark failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return {"error": done.stderr[-2000:]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _first_line(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else ""


def machine_info(layout: Layout) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "")
    versions = {}
    for package in ("uvicorn", "granian", "aiohttp", "redis", "hiredis", "uvloop", "httptools", "multidict", "yarl"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "packages": versions,
        "nginx": _first_line([nginx_binary() or "nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]).split("Copyright")[0].strip(),
        "redis_server": _first_line(["redis-server", "--version"]),
        "loadavg_at_start": os.getloadavg(),
        "layout": {
            "client": layout.client,
            "server": layout.server,
            "pair": layout.pair,
            "aux": layout.aux,
            "note": layout.note,
        },
    }


def source_info() -> dict[str, Any]:
    """What was measured: the commit, whether the tree had local changes, and a digest of the data
    plane's files as they were (other work may be in progress in the same checkout)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "proxy" / "gateway").glob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    info: dict[str, Any] = {"gateway_digest": digest.hexdigest()[:16]}
    if os.environ.get("BENCH_SOURCE_COMMIT"):  # a `git archive` export has no .git of its own
        info["commit"] = os.environ["BENCH_SOURCE_COMMIT"]
        return info
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "proxy"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        info["proxy_dirty"] = bool(status.stdout.strip())
    return info


def write_results(data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}.json"
    text = json.dumps(data, indent=2, default=str) + "\n"
    path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    return path


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (make killed, CI timeout) unwinds like Ctrl-C, so every child is stopped by PID."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", metavar="SCENARIO", help="py-spy profile of one scenario's server under load")
    args = parser.parse_args()
    settings = Settings.from_env()
    layout = Layout.detect()
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: `apt-get install -y wrk` (Debian package), then run `make bench` again.",
            file=sys.stderr,
        )
        return 1
    if args.profile:
        from bench.profile import profile_scenario

        settings = dataclasses.replace(settings, scenarios=(args.profile,), rounds=1)
        bench = Bench(settings, layout)
        with terminate_as_interrupt():
            try:
                bench.start()
                bench.check()
                return profile_scenario(bench, args.profile, RESULTS)
            finally:
                bench.stop_all()
                shutil.rmtree(bench.tmp, ignore_errors=True)

    started = dt.datetime.now(dt.UTC)
    print(
        f"bench: {settings.rounds} rounds × {settings.duration:g} s (+{settings.warmup:g} s warm-up), "
        f"{settings.connections} connections; CPUs: wrk {layout.client}, server {layout.server}, "
        f"upstream/Redis {layout.aux} ({layout.note})",
        file=sys.stderr,
    )
    machine = machine_info(layout)
    print(f"route matching benchmark ({settings.route_iterations:,} matches per table size)…", file=sys.stderr)
    routes = route_benchmark(settings.route_iterations, layout.server)
    bench = Bench(settings, layout)
    with terminate_as_interrupt():
        try:
            bench.start()
            bench.check()
            bench.run_rounds()
            bench.redis_accounting()
        finally:
            bench.stop_all()
    unavailable = {k: s.unavailable for k, s in bench.scenarios.items() if s.unavailable}
    for key in ALL_SCENARIOS:
        if key not in bench.scenarios:
            unavailable.setdefault(key, "not selected")
    summary = {k: report.summarise(s.runs, s.monitor) for k, s in bench.scenarios.items() if s.runs}
    summary = {k: v for k, v in summary.items() if v is not None}
    for key, scenario in bench.scenarios.items():
        if scenario.runs and key not in summary:
            unavailable[key] = "every round had errors (see JSON)"
    realistic = (routes or {}).get("realistic") or []
    route_p99 = next((r["p99_us"] for r in realistic if r["routes"] == 10_000), None)
    target_rows = report.targets(summary, unavailable, route_p99)
    data = {
        "started": started.isoformat(),
        "settings": settings.__dict__,
        "machine": machine,
        "source": source_info(),
        "routes": routes,
        "scenarios": {
            k: {
                "title": report.TITLES[k],
                "unavailable": s.unavailable,
                "runs": s.runs,
                "redis_monitor": s.monitor,
                "summary": summary.get(k),
            }
            for k, s in bench.scenarios.items()
        },
        "unavailable": unavailable,
        "ratios": report.ratios(summary),
        "added_latency": {
            "public": report.added_latency(summary, "g-public"),
            "full": report.added_latency(summary, "g-full"),
        },
        "targets": target_rows,
    }
    path = write_results(data)
    shutil.rmtree(bench.tmp, ignore_errors=True)
    print()
    print(report.table(summary, unavailable))
    if routes and "realistic" in routes:
        print()
        print(f"route matching (µs per match; timer overhead ≈ {routes['timer_overhead_ns']} ns included):")
        for label in ("realistic", "crowded"):
            for row in routes[label]:
                print(
                    f"  {label:9} {row['routes']:>6} routes  p50 {row['p50_us']:6.2f}  p99 {row['p99_us']:6.2f}"
                    f"  p99.9 {row['p999_us']:7.2f}  (table built in {row['build_ms']} ms)"
                )
    print()
    print("targets (issues 4 and 17):")
    print(report.targets_text(target_rows))
    print(f"\nresults: {path.relative_to(ROOT)} (and bench/results/latest.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
