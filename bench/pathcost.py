"""``python -m bench.pathcost``: the Python a request costs on the server's core, without sockets.

Under wrk, most of a request's CPU on this 2-vCPU VM is system calls and the wake-ups of the peer
processes, and their price rises as the request rate falls (docs/benchmarks.md): a change that
saves a few microseconds of Python is hard to see there. This runs the production server side
(the gateway's uvicorn protocol, ``edge.EdgeProtocol``) and the app on in-memory transports: a
request's bytes are fed to the protocol, the upstream's answer (the bench nginx's reply, byte for
byte) is fed to the pooled connection one loop turn after the request was written. What is left
is the Python of uvicorn, the app and the event loop per request, with nothing else on the core.

    python -m bench.pathcost               # (d) and (c2), 3 rounds of 20,000 requests each
    python -m bench.pathcost d --rounds 5  # one app
    python -m bench.pathcost d --profile   # cProfile of one round: the functions a request runs

Apps: ``d`` = bench/gateway_app.py (the gateway, public route), ``c2`` = bench/passthrough_h1.py
(the bare passthrough on the same client). The gateway needs a Redis at start: one of its own is
started on a free port and stopped by its PID. Figures are CPU microseconds per request (process
time), the median of the rounds; compare runs of one machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import uvloop

from bench.procs import free_port
from bench.upstream import BODY

APPS = {"d": "bench.gateway_app", "c2": "bench.passthrough_h1"}
UPSTREAM = "http://127.0.0.1:9"  # never connected to: the pooled connections are in memory
CONNECTIONS = 10  # clients in flight at once, as a loaded server batches a few per loop turn
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 06:41:13 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s"
) % (len(BODY), BODY)


class _Transport:
    """Just enough of a uvloop transport for a protocol to write to and be closed."""

    def __init__(self, on_write: Callable[[bytes], None], peer: tuple[str, int]) -> None:
        self.on_write = on_write
        self.peer = peer
        self.closing = False

    def write(self, data: bytes) -> None:
        self.on_write(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer, "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def _fill_pools(pools: list[Any], loop: asyncio.AbstractEventLoop) -> None:
    """Idle keep-alive connections whose upstream answers every request one loop turn later."""
    from proxy.gateway.h1client import H1Connection

    for pool in pools:
        for _ in range(CONNECTIONS):
            conn = H1Connection(pool, loop)
            conn.connection_made(
                _Transport(lambda _data, c=conn: loop.call_soon(c.data_received, RESPONSE), ("127.0.0.1", 9))  # type: ignore[misc]
            )
            pool.opened += 1
            pool.put(conn)


async def _lifespan(app: Any) -> Callable[[], Any]:
    """Run the app's lifespan startup; returns what ends it."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    started = asyncio.get_running_loop().create_future()

    async def send(message: dict[str, Any]) -> None:
        if not started.done():
            started.set_result(message["type"])

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    outcome = await started
    if outcome != "lifespan.startup.complete":
        raise SystemExit(f"the app did not start: {outcome}")

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 10)

    return stop


async def _measure(key: str, requests: int, rounds: int, profile: bool) -> list[float]:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from proxy.gateway.edge import EdgeProtocol

    os.environ["BENCH_UPSTREAM_URL"] = UPSTREAM
    module = importlib.import_module(APPS[key])
    app = module.app
    loop = asyncio.get_running_loop()
    stop = await _lifespan(app)
    if key == "d":
        from proxy.gateway.balancer import Target

        _fill_pools([app.forwarder.client.pool(Target.parse(UPSTREAM))], loop)
    else:
        _fill_pools([module._pool], loop)

    config = Config(
        app=app, lifespan="off", access_log=False, server_header=False, date_header=False, proxy_headers=False
    )
    config.load()
    state = ServerState()
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
    remaining = answered = 0
    finished: asyncio.Future[None] = loop.create_future()

    class Client:
        """One keep-alive client: the next request as soon as the last response is complete."""

        def __init__(self, index: int) -> None:
            self.protocol = EdgeProtocol(config=config, server_state=state, app_state={}, _loop=loop)
            self.protocol.connection_made(_Transport(self.written, ("127.0.0.1", 40000 + index)))  # type: ignore[arg-type]
            self.received = 0

        def written(self, data: bytes) -> None:
            nonlocal remaining, answered
            self.received += len(data)
            if not data.endswith(BODY):
                return
            answered += 1
            if remaining > 0:
                remaining -= 1
                loop.call_soon(self.protocol.data_received, request)
            elif answered == requests:
                finished.set_result(None)

    clients = [Client(i) for i in range(CONNECTIONS)]
    results = []
    profiler = cProfile.Profile() if profile else None
    for number in range(rounds + 1):  # the first round warms up and is not counted
        remaining, answered = requests - CONNECTIONS, 0
        finished = loop.create_future()
        if profiler is not None and number == 1:
            profiler.enable()
        began = time.process_time()
        for client in clients:
            client.protocol.data_received(request)
        await finished
        spent = time.process_time() - began
        if profiler is not None and number == 1:
            profiler.disable()
        if number:
            results.append(spent / requests * 1e6)
        if any(c.received == 0 for c in clients):
            raise SystemExit("a client got no response")
    for client in clients:
        client.protocol.connection_lost(None)
    await stop()
    if profiler is not None:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(40)
    return results


def _redis() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    directory = tempfile.mkdtemp(prefix="pathcost-redis-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False)
        if done.stdout.strip() == "PONG":
            return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("apps", nargs="*", metavar="APP", help="d, c2 (default: both)")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the first measured round")
    args = parser.parse_args(argv)
    unknown = [key for key in args.apps if key not in APPS]
    if unknown:
        parser.error(f"unknown app {unknown[0]!r}: choose from {', '.join(APPS)}")
    args.apps = args.apps or list(APPS)
    redis, url = _redis()
    os.environ["REDIS_URL"] = url
    figures: dict[str, float] = {}
    try:
        for key in args.apps:
            # One process per app: each starts from a clean interpreter, like its server would.
            code = f"import sys, asyncio, uvloop; from bench import pathcost; print(pathcost._child({key!r}, {args.requests}, {args.rounds}, {args.profile}))"
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=600)
            if done.returncode != 0:
                print(done.stdout, done.stderr, file=sys.stderr)
                return 1
            lines = done.stdout.strip().splitlines()
            if args.profile:
                print("\n".join(lines[:-1]))
            rounds = [float(x) for x in lines[-1].split(",")]
            figures[key] = statistics.median(rounds)
            spread = ", ".join(f"{x:.1f}" for x in rounds)
            print(f"({key}) {figures[key]:6.1f} µs of CPU per request, median of {len(rounds)} rounds ({spread})")
    finally:
        redis.terminate()
        redis.wait(10)
    if "d" in figures and "c2" in figures:
        print(f"(d) − (c2): {figures['d'] - figures['c2']:.1f} µs per request of the gateway's own Python")
    return 0


def _child(key: str, requests: int, rounds: int, profile: bool) -> str:
    import logging

    logging.disable(logging.WARNING)  # as bench.bench runs (d): LOG_LEVEL=warning
    results = uvloop.run(_measure(key, requests, rounds, profile))
    return ",".join(f"{x:.2f}" for x in results)


if __name__ == "__main__":
    sys.exit(main())
