"""WebSocket figures for `make bench`: relay messages/s per core, memory per idle socket.

    .venv/bin/python -m bench.websockets [--sockets 10000] [--relay-sockets 50] [--messages 2000]

The demo appliance API is the upstream (its event WebSocket echoes what it receives; its
periodic events are switched off), the gateway is `bench.gateway_app` (a public route), both
on 127.0.0.1 with their file limits raised. Target (issue 6): 10,000 sockets in one gateway
process under 1 GB RSS. Every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FILES = 65_536


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FILES, max(hard, FILES)))
    except (ValueError, OSError):  # not root: take what the hard limit allows
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **env},
        preexec_fn=_raise_file_limit,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            import urllib.request

            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{args[:4]} did not start")


async def _open(url: str, count: int, batch: int = 100) -> tuple[list[ClientConnection], int]:
    """Open up to ``count`` sockets; stops at the first batch with failures (returned as a
    count, so a partial run still reports what it measured)."""
    sockets: list[ClientConnection] = []
    failed = 0
    for start in range(0, count, batch):
        opened = await asyncio.gather(
            *(connect(url, open_timeout=60, max_queue=4) for _ in range(min(batch, count - start))),
            return_exceptions=True,
        )
        for ws in opened:
            if isinstance(ws, BaseException):
                failed += 1
                continue
            await asyncio.wait_for(ws.recv(), 30)  # the upstream's hello: the relay is up
            sockets.append(ws)
        if failed:
            break
    return sockets, failed


async def _relay(url: str, sockets: int, messages: int, gateway_pid: int) -> dict[str, float]:
    conns, _ = await _open(url, sockets)
    payload = "x" * 100

    async def pump(ws: ClientConnection) -> None:
        window = 50  # in flight per socket, so both directions stay busy
        sent = received = 0
        while received < messages:
            while sent < messages and sent - received < window:
                await ws.send(payload)
                sent += 1
            reply = await asyncio.wait_for(ws.recv(), 30)
            if "echo" in str(reply):
                received += 1

    cpu_before, started = _cpu_seconds(gateway_pid), time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(pump(ws) for ws in conns)), 300)
    elapsed, cpu = time.monotonic() - started, _cpu_seconds(gateway_pid) - cpu_before
    for ws in conns:
        await ws.close()
    relayed = 2 * sockets * messages  # each message crosses the gateway twice (up and echo)
    return {
        "sockets": sockets,
        "messages_relayed": relayed,
        "seconds": round(elapsed, 2),
        "gateway_cpu_seconds": round(cpu, 2),
        "messages_per_second": round(relayed / elapsed),
        "messages_per_cpu_second": round(relayed / cpu) if cpu else 0.0,
    }


async def _idle(url: str, count: int, gateway_pid: int) -> dict[str, float]:
    base = _rss_kib(gateway_pid)
    started = time.monotonic()
    conns, failed = await asyncio.wait_for(_open(url, count), 600)
    await asyncio.sleep(2)
    full = _rss_kib(gateway_pid)
    result = {
        "sockets": len(conns),
        "open_seconds": round(time.monotonic() - started, 1),
        "rss_before_mib": round(base / 1024, 1),
        "rss_mib": round(full / 1024, 1),
        "kib_per_socket": round((full - base) / max(1, len(conns)), 1),
    }
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=int(os.environ.get("BENCH_WS_SOCKETS", "10000")))
    parser.add_argument("--relay-sockets", type=int, default=50)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    _raise_file_limit()
    demo_port, gw_port = free_port(), free_port()
    python = sys.executable
    demo = _start([python, "-m", "demo", "--port", str(demo_port), "--event-interval", "3600"], {}, demo_port)
    gateway = _start(
        [
            python,
            "-m",
            "uvicorn",
            "bench.gateway_app:app",
            "--port",
            str(gw_port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--lifespan",
            "on",
            "--log-level",
            "warning",
            "--ws-max-queue",
            "4",
            "--backlog",
            "4096",
        ],
        {"BENCH_UPSTREAM_URL": f"http://127.0.0.1:{demo_port}", "REDIS_PREFIX": f"apigw-bench-ws-{gw_port}:"},
        gw_port,
    )
    url = f"ws://127.0.0.1:{gw_port}/api/v1/events/ws"
    try:
        relay = asyncio.run(_relay(url, args.relay_sockets, args.messages, gateway.pid))
        idle = asyncio.run(_idle(url, args.sockets, gateway.pid))
    finally:
        for proc in (gateway, demo):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    projected = idle["rss_before_mib"] + idle["kib_per_socket"] * 10_000 / 1024
    report: dict[str, Any] = {"relay": relay, "idle": idle, "projected_rss_mib_at_10000": round(projected, 1)}
    print(
        f"relay: {relay['messages_per_second']:,} messages/s, {relay['messages_per_cpu_second']:,} per gateway "
        f"CPU-second ({relay['sockets']} sockets × {args.messages} echoes)"
    )
    print(
        f"idle: {idle['sockets']:,} sockets, gateway RSS {idle['rss_before_mib']} → {idle['rss_mib']} MiB, "
        f"{idle['kib_per_socket']} KiB per socket"
    )
    verdict = (
        "met"
        if idle["sockets"] >= 10_000 and idle["rss_mib"] < 1024
        else ("met (projected)" if projected < 1024 else "NOT MET")
    )
    print(f"target: 10,000 sockets in one process under 1 GB RSS: {verdict}")
    report["target"] = verdict
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "websockets-latest.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
