"""Medians, ratios, the table and the targets of one benchmark run."""

from __future__ import annotations

import statistics
from typing import Any

# Scenario keys in table order, with their titles.
TITLES = {
    "a": "(a) upstream direct (static reply)",
    "b": "(b) nginx proxy_pass, keepalive",
    "c": "(c) Python passthrough (uvicorn+aiohttp)",
    "c2": "(c2) Python passthrough (uvicorn+own HTTP/1.1 client)",
    "c-httpx": "(c-httpx) same passthrough on httpx (control plane's)",
    "d": "(d) gateway, public route (uvicorn)",
    "d-granian": "(d) gateway, public route (granian)",
    "e": "(e) gateway full path (uvicorn)",
    "e-granian": "(e) gateway full path (granian)",
    "f": "(f) full path, 2 workers",
    "g-direct": "(g) 1 conn: upstream direct",
    "g-public": "(g) 1 conn: gateway public route",
    "g-full": "(g) 1 conn: gateway full path",
}


# A run during which other processes used more than this many cores is "disturbed".
DISTURBED = 0.25
CPU_FIELDS = ("server_cpu_us_per_request", "redis_used_cpu_us_per_request", "redis_evalsha_us_per_request")


def summarise(runs: list[dict[str, Any]], monitor: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Median and min–max over the rounds that completed without errors, leaving out the rounds
    other processes disturbed when undisturbed ones exist."""
    good = [r for r in runs if r.get("ok")]
    if not good:
        return None
    quiet = [r for r in good if not r.get("disturbed")]
    disturbed_used = not quiet
    good = quiet or good

    def spread(field: str) -> dict[str, float]:
        values = [float(r[field]) for r in good if r.get(field) is not None]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    out: dict[str, Any] = {
        "rounds": len(good),
        "rounds_left_out": len(runs) - len(good),
        "disturbed_rounds_used": disturbed_used,
        "rps": spread("rps"),
        "p50_ms": spread("p50_ms"),
        "p99_ms": spread("p99_ms"),
    }
    executed = [r["redis_ops_per_request"] for r in good if r.get("redis_ops_per_request") is not None]
    if executed:
        out["redis_ops_per_request"] = statistics.median(executed)
    # CPU per request: the server's process tree, Redis's used_cpu, and EVALSHA's own usec.
    for field in CPU_FIELDS:
        values = [float(r[field]) for r in good if r.get(field) is not None]
        if values:
            out[field] = spread(field)
    if monitor and monitor.get("per_request") is not None:
        out["redis_sent_per_request"] = monitor["per_request"]
        out["redis_edge"] = monitor.get("edge") or 0.0
    return out


def _median(summary: dict[str, Any], key: str, field: str = "rps") -> float | None:
    s = summary.get(key)
    return float(s[field]["median"]) if s else None


def _cpu(summary: dict[str, Any], key: str) -> float | None:
    s = summary.get(key)
    return float(s["server_cpu_us_per_request"]["median"]) if s and "server_cpu_us_per_request" in s else None


def ratios(summary: dict[str, Any]) -> dict[str, float | None]:
    """Throughput ratios (issue 17's goal list first), and CPU-per-request ratios ("CPU" in the
    name), which the other processes of a shared machine disturb much less."""

    def ratio(top: str, bottom: str) -> float | None:
        a, b = _median(summary, top), _median(summary, bottom)
        return round(a / b, 3) if a is not None and b else None

    def cpu_ratio(top: str, bottom: str) -> float | None:
        a, b = _cpu(summary, top), _cpu(summary, bottom)
        return round(a / b, 3) if a is not None and b else None

    out = {
        "(d)/(c)": ratio("d", "c"),
        "(e)/(c)": ratio("e", "c"),
    }
    if "c2" in summary:  # the lean-client passthrough, when the scenario exists
        out["(d)/(c2)"] = ratio("d", "c2")
        out["(e)/(c2)"] = ratio("e", "c2")
    out.update(
        {
            "(c-httpx)/(c)": ratio("c-httpx", "c"),
            "(e)/(b)": ratio("e", "b"),
            "(f)/(e)": ratio("f", "e"),
            "(d) granian/uvicorn": ratio("d-granian", "d"),
            "(e) granian/uvicorn": ratio("e-granian", "e"),
            "CPU/request (c)/(d)": cpu_ratio("c", "d"),
            "CPU/request (c)/(e)": cpu_ratio("c", "e"),
            "CPU/request (f) 2 workers / (e) 1 worker": cpu_ratio("f", "e"),
        }
    )
    return out


def added_latency(summary: dict[str, Any], gateway: str) -> dict[str, float] | None:
    direct, via = summary.get("g-direct"), summary.get(gateway)
    if not direct or not via:
        return None
    return {
        "p50_ms": round(via["p50_ms"]["median"] - direct["p50_ms"]["median"], 3),
        "p99_ms": round(via["p99_ms"]["median"] - direct["p99_ms"]["median"], 3),
    }


def _verdict(ok: bool | None, why: str = "") -> str:
    if ok is None:
        why = why if len(why) <= 60 else why[:58] + "…"
        return f"n/a ({why})" if why else "n/a"
    return "met" if ok else "NOT MET"


def targets(summary: dict[str, Any], unavailable: dict[str, str], route_p99_10k: float | None) -> list[dict[str, Any]]:
    """Issue 4's targets, each met / NOT MET / n/a with the measured value."""
    r = ratios(summary)
    e_rps = _median(summary, "e")
    why_e = unavailable.get("e", "not measured")
    out: list[dict[str, Any]] = []

    def add(name: str, value: str, ok: bool | None, why: str = "") -> None:
        out.append({"target": name, "measured": value, "verdict": _verdict(ok, why)})

    add("(e) >= 2,000 rps on one core", f"{e_rps:,.0f} rps" if e_rps else "-", e_rps >= 2000 if e_rps else None, why_e)
    ec = r["(e)/(c)"]
    add("(e) >= 60 % of (c)", f"{ec:.0%}" if ec else "-", ec >= 0.6 if ec else None, why_e)
    full = added_latency(summary, "g-full")
    add(
        "(g) added p50 < 1 ms (full path)",
        f"{full['p50_ms']:.3f} ms" if full else "-",
        full["p50_ms"] < 1 if full else None,
        unavailable.get("g-full", why_e),
    )
    add(
        "(g) added p99 < 3 ms (full path)",
        f"{full['p99_ms']:.3f} ms" if full else "-",
        full["p99_ms"] < 3 if full else None,
        unavailable.get("g-full", why_e),
    )
    public = added_latency(summary, "g-public")
    if public:
        add("  same, public route only: p50 < 1 ms", f"{public['p50_ms']:.3f} ms", public["p50_ms"] < 1)
        add("  same, public route only: p99 < 3 ms", f"{public['p99_ms']:.3f} ms", public["p99_ms"] < 3)
    per_req = summary["e"].get("redis_sent_per_request") if summary.get("e") else None
    edge = summary["e"].get("redis_edge", 0.0) if summary.get("e") else 0.0
    add(
        "<= 1 Redis command per proxied request (full path)",
        f"{per_req:.3f}" if per_req is not None else "-",
        # Requests still in flight when wrk stopped reached Redis but are not in wrk's count.
        per_req <= 1 + edge if per_req is not None else None,
        why_e,
    )
    dc = r["(d)/(c)"]
    add("(d) >= 1.0 x (c) (issue 17)", f"{dc:.2f}" if dc else "-", dc >= 1.0 if dc else None, unavailable.get("d", ""))
    if "(d)/(c2)" in r:
        dc2 = r["(d)/(c2)"]
        add("(d) >= 0.5 x (c2) (issue 17)", f"{dc2:.2f}" if dc2 else "-", dc2 >= 0.5 if dc2 else None)
    redis_cpu = summary["e"].get("redis_used_cpu_us_per_request") if summary.get("e") else None
    add(
        "Redis CPU per proxied request <= 10 µs (full path)",
        f"{redis_cpu['median']:.1f} µs" if redis_cpu else "-",
        redis_cpu["median"] <= 10 if redis_cpu else None,
        why_e,
    )
    # Issue 17 replaces "(f)/(e) >= 1.7", which 2 CPUs shared with wrk, nginx and Redis cannot
    # judge: a second worker must not make each request dearer. On 2 CPUs (f)'s workers take
    # turns on one core; `bench.pathcost e --workers 2` (run by make bench, its own target line)
    # gives each a core.
    fe_cpu = r["CPU/request (f) 2 workers / (e) 1 worker"]
    add(
        "CPU/request, 2 workers on one shared core, within 10 % (f)/(e)",
        f"{fe_cpu:.2f}" if fe_cpu else "-",
        fe_cpu <= 1.10 if fe_cpu else None,
        unavailable.get("f", why_e),
    )
    add(
        "route match p99 < 20 µs at 10,000 routes",
        f"{route_p99_10k:.2f} µs" if route_p99_10k is not None else "-",
        route_p99_10k < 20 if route_p99_10k is not None else None,
        "route benchmark skipped",
    )
    return out


def _cpu_cell(s: dict[str, Any], field: str) -> str:
    return f"{s[field]['median']:.1f}" if field in s else "-"


def _fmt_spread(s: dict[str, float], fmt: str) -> str:
    return f"{s['median']:{fmt}} ({s['min']:{fmt}}–{s['max']:{fmt}})"


def _rounds(s: dict[str, Any]) -> str:
    text = str(s["rounds"])
    if s.get("rounds_left_out"):
        text += f" ({s['rounds_left_out']} left out)"
    if s.get("disturbed_rounds_used"):
        text += " disturbed!"
    return text


def table(summary: dict[str, Any], unavailable: dict[str, str]) -> str:
    head = (
        f"{'scenario':48} {'requests/s median (min–max)':>30} {'p50 ms':>8}"
        f" {'p99 ms median (min–max)':>26} {'CPU µs/req':>10} {'Redis sent/req':>14} {'run in Redis/req':>16}"
        f" {'Redis µs/req':>12} {'EVALSHA µs/req':>14}  rounds"
    )
    lines = [head, "-" * len(head)]
    for key, title in TITLES.items():
        s = summary.get(key)
        if s is None:
            reason = unavailable.get(key, "not run")
            reason = reason if len(reason) <= 72 else reason[:70] + "…"
            lines.append(f"{title:48} {'n/a (' + reason + ')':>30}")
            continue
        sent = f"{s['redis_sent_per_request']:.3f}" if "redis_sent_per_request" in s else "-"
        executed = f"{s['redis_ops_per_request']:.2f}" if "redis_ops_per_request" in s else "-"
        cpu, redis_cpu, evalsha = (_cpu_cell(s, field) for field in CPU_FIELDS)
        lines.append(
            f"{title:48} {_fmt_spread(s['rps'], ',.0f'):>30} {s['p50_ms']['median']:8.2f}"
            f" {_fmt_spread(s['p99_ms'], '.2f'):>26} {cpu:>10} {sent:>14} {executed:>16} {redis_cpu:>12}"
            f" {evalsha:>14}  {_rounds(s)}"
        )
    lines.append("")
    for name, value in ratios(summary).items():
        lines.append(f"{name:42} {value:.2f}" if value is not None else f"{name:42} n/a")
    for label, key in (("public route", "g-public"), ("full path", "g-full")):
        added = added_latency(summary, key)
        if added:
            lines.append(
                f"added latency at 1 connection, {label}: p50 {added['p50_ms']:+.3f} ms, p99 {added['p99_ms']:+.3f} ms"
            )
    lines.append(
        "Redis sent/req: commands the gateway sends per request, net of its timers' background commands "
        "(MONITOR pass); run in Redis/req: every command Redis "
        "executes, Lua scripts' own calls included (INFO commandstats over the measured rounds); "
        "CPU µs/req: utime+stime of the server's processes (/proc) / requests answered; Redis µs/req: "
        "Redis used_cpu (INFO cpu) / requests; EVALSHA µs/req: commandstats usec of EVALSHA / requests; "
        "rounds left out: errors, or other processes busy meanwhile"
    )
    return "\n".join(lines)


def targets_text(rows: list[dict[str, Any]]) -> str:
    width = max(len(r["target"]) for r in rows)
    return "\n".join(f"{r['target']:{width}}  {r['measured']:>14}  {r['verdict']}" for r in rows)


def markdown(data: dict[str, Any]) -> str:
    """The figures of one results file as Markdown tables (docs/benchmarks.md is built from this)."""
    summary = {k: s["summary"] for k, s in data["scenarios"].items() if s.get("summary")}
    unavailable: dict[str, str] = data.get("unavailable", {})
    out = [
        "| scenario | requests/s median (min–max) | p50 ms | p99 ms median (min–max) | CPU µs/req "
        "| Redis sent/req | run in Redis/req | Redis µs/req | EVALSHA µs/req | rounds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, title in TITLES.items():
        s = summary.get(key)
        if s is None:
            out.append(f"| {title} | n/a ({unavailable.get(key, 'not run')}) | | | | | | | | |")
            continue
        sent = f"{s['redis_sent_per_request']:.3f}" if "redis_sent_per_request" in s else "–"
        executed = f"{s['redis_ops_per_request']:.2f}" if "redis_ops_per_request" in s else "–"
        cpu, redis_cpu, evalsha = (_cpu_cell(s, field).replace("-", "–") for field in CPU_FIELDS)
        out.append(
            f"| {title} | {_fmt_spread(s['rps'], ',.0f')} | {s['p50_ms']['median']:.2f} "
            f"| {_fmt_spread(s['p99_ms'], '.2f')} | {cpu} | {sent} | {executed} | {redis_cpu} | {evalsha} "
            f"| {_rounds(s)} |"
        )
    out += ["", "| ratio | value |", "|---|---:|"]
    for name, value in data.get("ratios", {}).items():
        out.append(f"| {name} | {value:.2f} |" if value is not None else f"| {name} | n/a |")
    routes = data.get("routes") or {}
    if "realistic" in routes:
        out += [
            "",
            "| route table | routes | p50 µs | p99 µs | p99.9 µs | mean µs | table built in |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label in ("realistic", "crowded"):
            for row in routes[label]:
                out.append(
                    f"| {label} | {row['routes']:,} | {row['p50_us']:.2f} | {row['p99_us']:.2f} "
                    f"| {row['p999_us']:.2f} | {row['mean_us']:.2f} | {row['build_ms']} ms |"
                )
    out += ["", "| target | measured | verdict |", "|---|---:|---|"]
    for row in data.get("targets", []):
        out.append(f"| {row['target'].strip()} | {row['measured']} | {row['verdict']} |")
    return "\n".join(out)


if __name__ == "__main__":
    import json
    import sys

    path = sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest.json"
    with open(path) as results:
        print(markdown(json.load(results)))
