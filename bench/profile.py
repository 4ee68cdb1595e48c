"""``python -m bench.bench --profile KEY``: py-spy samples one scenario's server under wrk load and
prints where the time goes (self time and inclusive time per function).

py-spy is not a project dependency: ``.venv/bin/pip install py-spy`` for the session.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.procs import WrkResult, run_wrk

if TYPE_CHECKING:
    from bench.bench import Bench

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*)\)$")


def _label(frame: str) -> str:
    """``handle (proxy/gateway/app.py)`` → ``handle  gateway/app.py`` (the last two path parts)."""
    found = _FRAME.match(frame.strip())
    if not found:
        return frame.strip()
    file = "/".join(Path(found.group("file")).parts[-2:])
    return f"{found.group('func')}  {file}"


def _component(frame: str) -> str:
    """Which part of the stack a frame belongs to, for the by-component split."""
    found = _FRAME.match(frame.strip())
    file = "/" + (found.group("file") if found else frame)
    for marker, name in (
        ("/proxy/gateway/", "gateway: "),
        ("/aiohttp/", "aiohttp (upstream client)"),
        ("/uvicorn/", "uvicorn (HTTP server)"),
        ("/granian/", "granian (HTTP server)"),
        ("/redis/", "redis-py"),
        ("/multidict/", "multidict/yarl"),
        ("/yarl/", "multidict/yarl"),
        ("/asyncio/", "asyncio + uvloop (event loop, native I/O)"),
    ):
        if marker in file:
            return name + Path(file).name if name.endswith(": ") else name
    return "stdlib/other: " + Path(file).name


def top_functions(raw: str, limit: int = 25) -> dict[str, Any]:
    """Self and inclusive samples per function, and self samples per component, for the busiest
    thread (the event loop); other threads (idle executor workers) are reported apart."""
    per_thread: dict[str, list[tuple[list[str], int]]] = collections.defaultdict(list)
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        thread = next((f for f in frames if f.startswith("thread ")), "thread ?")
        frames = [f for f in frames if f and not f.startswith(("process ", "thread "))]
        if frames:
            per_thread[thread].append((frames, int(count_text)))
    if not per_thread:
        return {"total": 0, "threads": {}, "self": [], "inclusive": [], "components": []}
    totals = {t: sum(c for _, c in stacks) for t, stacks in per_thread.items()}
    busiest = max(totals, key=lambda t: totals[t])
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    components: collections.Counter[str] = collections.Counter()
    for frames, count in per_thread[busiest]:
        labels = [_label(f) for f in frames]
        own[labels[-1]] += count
        components[_component(frames[-1])] += count
        for name in set(labels):
            inclusive[name] += count
    return {
        "total": totals[busiest],
        "threads": totals,
        "self": own.most_common(limit),
        "inclusive": inclusive.most_common(limit),
        "components": components.most_common(),
    }


def profile_scenario(bench: Bench, key: str, results: Path) -> int:
    scenario = bench.scenarios.get(key)
    if scenario is None or scenario.unavailable or scenario.server is None or scenario.port is None:
        reason = scenario.unavailable if scenario else "unknown scenario"
        print(f"cannot profile {key}: {reason}", file=sys.stderr)
        return 1
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print(
            "py-spy is not installed: .venv/bin/pip install py-spy (for the session; not a dependency)", file=sys.stderr
        )
        return 1
    seconds = max(3, round(bench.settings.duration))
    results.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = results / f"profile-{key}-{stamp}.txt"
    # Warm up first, then sample while wrk runs a little longer than the recording.
    run_wrk(
        scenario.port, seconds=1, connections=scenario.connections, headers=scenario.headers, cpus=bench.layout.client
    )
    load: list[WrkResult] = []
    loader = threading.Thread(
        target=lambda: load.append(
            run_wrk(
                scenario.port or 0,
                seconds=seconds + 2,
                connections=scenario.connections,
                headers=scenario.headers,
                cpus=bench.layout.client,
            )
        )
    )
    loader.start()
    record = [py_spy, "record", "--pid", str(scenario.server.pid), "--subprocesses", "--duration", str(seconds)]
    record += ["--rate", "200", "--nolineno", "--threads", "--format", "raw", "--output", str(out)]
    if os.environ.get("BENCH_PROFILE_NATIVE") == "1":
        record.append("--native")
    done = subprocess.run(record, capture_output=True, text=True, timeout=seconds + 60, check=False)
    loader.join(seconds + 60)
    if done.returncode != 0 or not out.exists():
        print(f"py-spy failed ({done.returncode}): {done.stderr.strip()}", file=sys.stderr)
        return 1
    top = top_functions(out.read_text())
    total = top["total"] or 1
    rps = f"{load[0].rps:,.0f} rps under the profiler" if load else "load result missing"
    print(f"\nprofile of {key}: {rps}; event-loop thread {top['total']} samples at 200 Hz over {seconds} s")
    others = sum(top["threads"].values()) - top["total"]
    if others:
        print(f"(other threads, left out below: {others} samples — executor workers, mostly waiting)")
    print(f"collapsed stacks: {out.relative_to(results.parent.parent)} (flamegraph.pl or speedscope read it)\n")
    sections = (
        ("self time by component", top["components"]),
        ("self time (the function's own code)", top["self"]),
        ("inclusive time (with callees)", top["inclusive"]),
    )
    # The server's core is saturated under this load, so a share of samples is a share of the
    # time each request costs: µs/request = share × 1e6 / rps.
    per_request_us = 1e6 / load[0].rps if load and load[0].rps else 0.0
    if per_request_us:
        print(f"one core saturated: {per_request_us:.0f} µs of CPU per request under the profiler\n")
    for title, rows in sections:
        print(title)
        for name, count in rows:
            if title.startswith("inclusive") and count >= 0.995 * total:
                continue  # the server's own frames above the application
            share = count / total
            cost = f"{share * per_request_us:6.1f} µs" if per_request_us else ""
            print(f"  {100 * share:5.1f} %  {cost}  {name}")
        print()
    return 0
