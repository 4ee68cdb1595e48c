"""Scenarios (e) full path, (f) full path on 2 workers and (g) added latency on the full path.

The hook is ``full_path()``: it returns ``None`` while the gateway has no authentication and
rate-limit phases (issue 3), and the table then prints "n/a (needs issue 3)". Once
``proxy.gateway.ratelimit`` exists it builds the fixture through the control plane's public
contracts only — ORM rows for upstream, product, plan and a key-protected route in a throw-away
SQLite database, and the key from ``manage.py apikey create`` (issue 3's CLI; the secret is its last
stdout line) — and serves the production ASGI entry point ``apigw.asgi:application`` with JSON
access logs at INFO, so (e) measures what production runs: match → authenticate → limit + quota +
usage counting (one Lua call) → forward → metrics + access log.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_YET = "needs issue 3"
# Limits far above what one machine can send: every request is checked and counted, none refused.
GENEROUS = 1_000_000_000


@dataclass(frozen=True)
class FullPath:
    app: str  # ASGI application path for uvicorn / granian
    env: dict[str, str]  # the server process's environment on top of the orchestrator's
    headers: dict[str, str]  # sent with every request (the API key)


def unavailable_reason() -> str | None:
    """Why the full path cannot be measured yet, or None when it can."""
    for module in ("proxy.gateway.ratelimit", "proxy.gateway.auth"):
        if importlib.util.find_spec(module) is None:
            return NOT_YET
    return None


def full_path(workdir: Path, *, upstream_url: str, redis_url: str, redis_prefix: str) -> FullPath | None:
    """The (e)/(f)/(g) fixture, or None while the gateway lacks auth/rate limits."""
    if unavailable_reason() is not None:
        return None
    env = {
        "DJANGO_SETTINGS_MODULE": "apigw.settings",
        "DATABASE_URL": f"sqlite:///{workdir / 'full-path.sqlite3'}",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-not-a-secret",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    child_env = {**os.environ, **env}
    _run([sys.executable, "manage.py", "migrate", "--run-syncdb", "--noinput"], child_env)
    key = _run([sys.executable, "-m", "bench.full_path", upstream_url], child_env).strip().splitlines()[-1].strip()
    return FullPath(app="apigw.asgi:application", env=env, headers={"X-API-Key": key})


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeError(f"`{' '.join(args[1:3])}` failed: {last}")
    return done.stdout


def _create_fixture(upstream_url: str) -> str:
    """Rows for the full path; returns the API key. Runs in a child with Django settings set."""
    import io

    import django

    django.setup()
    from django.core.management import call_command

    from proxy.models import ApiProduct, Plan, Route, Target, Upstream

    upstream = Upstream.objects.create(name="bench")
    Target.objects.create(upstream=upstream, url=upstream_url)
    product = ApiProduct.objects.create(name="Bench", slug="bench")
    Plan.objects.create(
        name="Bench",
        slug="bench",
        scope="key",
        per_second=GENEROUS,
        per_minute=GENEROUS,
        quota_day=GENEROUS,
        quota_month=GENEROUS,
        public=False,
    )
    Route.objects.create(name="bench", upstream=upstream, path_type="prefix", path="/", auth="key", product=product)
    out = io.StringIO()
    call_command(
        "apikey",
        "create",
        "--partner",
        "bench",
        "--plan",
        "bench",
        "--name",
        "bench",
        "--products",
        "bench",
        "--create-partner",
        stdout=out,
    )
    return out.getvalue().strip().splitlines()[-1].strip()


if __name__ == "__main__":
    print(_create_fixture(sys.argv[1]))
