"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import time

import redis
from django.db import connection
from django.http import HttpRequest, JsonResponse

from apigw import runtime
from proxy import configbus


def healthz(request: HttpRequest) -> JsonResponse:
    """Alive: the process answers. No I/O, so a slow database never restarts healthy pods."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict[str, object]] = {}
    gateway = runtime.gateway
    if gateway is not None:
        snapshot = gateway.store.snapshot
        checks["snapshot"] = {
            "ok": snapshot is not None,
            "version": snapshot.version if snapshot else None,
            "age_seconds": round(time.time() - snapshot.built_at, 1) if snapshot else None,
        }
    try:
        configbus.redis_client().ping()
        checks["redis"] = {"ok": True}
    except (redis.RedisError, OSError) as exc:
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except Exception as exc:  # any driver error means "not reachable" here
        # With the last snapshot in memory the gateway still serves: report, but stay ready.
        checks["database"] = {
            "ok": False,
            "error": type(exc).__name__,
            "serving_last_snapshot": bool(gateway and gateway.store.snapshot),
        }
    ready = all(c["ok"] for name, c in checks.items() if name != "database") and (
        checks["database"]["ok"] or bool(checks["database"].get("serving_last_snapshot"))
    )
    return JsonResponse({"status": "ready" if ready else "unready", "checks": checks}, status=200 if ready else 503)
