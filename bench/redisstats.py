"""Counting a scenario's Redis commands two ways.

``INFO commandstats`` counts every command Redis executes, including the ones a Lua script runs
inside one EVALSHA — it measures work inside Redis. The issue's target ("at most one Redis command
per proxied request") is about what the gateway sends, so a short extra pass reads ``MONITOR``,
which tags each command with its origin: a client address, or ``lua`` for a script's own calls.
MONITOR slows Redis, so that pass is separate from the measured rounds.
"""

from __future__ import annotations

import collections
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

_LINE = re.compile(r'^\d+\.\d+ \[\d+ (?P<origin>[^\]]+)\] "(?P<cmd>[^"]+)"(?: "(?P<arg>[^"]*)")?')


def command_counts(url: str) -> dict[str, int]:
    """Calls per command so far (INFO itself left out)."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    counts = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    counts.pop("info", None)
    return counts


def cpu(url: str) -> dict[str, float]:
    """Redis's CPU so far: ``used_cpu`` (user + sys seconds, INFO cpu) and the microseconds spent
    in each command (INFO commandstats ``usec``; a script's inner calls are inside EVALSHA's)."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
        stats = client.info("commandstats")
    finally:
        client.close()
    out = {"used_cpu": float(info["used_cpu_user"]) + float(info["used_cpu_sys"])}
    out.update({"usec:" + name.removeprefix("cmdstat_"): float(v["usec"]) for name, v in stats.items()})
    return out


def cpu_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """Redis µs per request: all of its CPU (``used_cpu_us``), and the EVALSHA calls' own time."""
    if not requests:
        return {}
    used = (after["used_cpu"] - before["used_cpu"]) * 1e6 / requests
    evalsha = (after.get("usec:evalsha", 0.0) - before.get("usec:evalsha", 0.0)) / requests
    return {"used_cpu_us": round(used, 2), "evalsha_us": round(evalsha, 2)}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def _wait_for(path: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def monitor_pass(
    url: str, workdir: Path, load: Callable[[], int], idle_seconds: float, in_flight: int
) -> dict[str, Any] | None:
    """Run ``load`` (returns the number of requests it made) under MONITOR; commands per request
    by origin. The gateway also talks to Redis on timers (config version poll, usage flush, …):
    an idle window of ``idle_seconds`` before the load measures that background, and
    ``per_request`` subtracts it (scaled to the load's duration). wrk counts only the requests it
    saw answered: up to ``in_flight`` more reached Redis when it stopped, hence ``edge``.
    None when redis-cli is missing."""
    cli = shutil.which("redis-cli")
    if cli is None:
        return None
    client = redis.Redis.from_url(url)
    port = client.connection_pool.connection_kwargs.get("port", 6379)
    out = workdir / f"monitor-{uuid.uuid4().hex[:8]}.log"
    tag = uuid.uuid4().hex
    start, loaded, end = f"bench-start-{tag}", f"bench-load-{tag}", f"bench-end-{tag}"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [cli, "-h", "127.0.0.1", "-p", str(port), "monitor"], stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        for _ in range(50):  # until MONITOR is attached and sees our marker
            client.echo(start)
            if _wait_for(out, start, 0.2):
                break
        else:
            return None
        time.sleep(idle_seconds)
        client.echo(loaded)
        load_started = time.monotonic()
        requests = load()
        load_seconds = time.monotonic() - load_started
        client.echo(end)
        if not _wait_for(out, end, 60):
            return None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        client.close()
    idle: collections.Counter[str] = collections.Counter()
    sent: collections.Counter[str] = collections.Counter()
    in_lua: collections.Counter[str] = collections.Counter()
    phase = ""
    for line in out.read_text(errors="replace").splitlines():
        found = _LINE.match(line)
        if not found:
            continue
        cmd = found.group("cmd").lower()
        if cmd == "echo" and found.group("arg") in (start, loaded, end):
            phase = {start: "idle", loaded: "load", end: ""}[found.group("arg") or ""]
            continue
        if phase == "idle" and found.group("origin") != "lua":
            idle[cmd] += 1
        elif phase == "load":
            (in_lua if found.group("origin") == "lua" else sent)[cmd] += 1
    out.unlink(missing_ok=True)
    background = sum(idle.values()) * load_seconds / idle_seconds if idle_seconds > 0 else 0.0
    return {
        "requests": requests,
        "load_seconds": round(load_seconds, 2),
        "sent": dict(sent),
        "in_lua": dict(in_lua),
        "idle_sent": dict(idle),
        "idle_seconds": idle_seconds,
        "sent_per_request": round(sum(sent.values()) / requests, 4) if requests else None,
        # What one more request costs: everything sent under load minus the timers' share.
        "per_request": round(max(0.0, sum(sent.values()) - background) / requests, 4) if requests else None,
        "in_lua_per_request": round(sum(in_lua.values()) / requests, 4) if requests else None,
        "edge": round(in_flight / requests, 4) if requests else None,
    }
