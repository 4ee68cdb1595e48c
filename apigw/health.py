"""Liveness and readiness for load balancers and orchestrators.

``/readyz`` answers 200 ``{"status": "ready", "checks": {...}}`` or 503 ``"unready"``, one
entry per check, each with ``ok``:

- ``snapshot``: this process serves a configuration snapshot (processes running a gateway).
- ``redis``: Redis answers (limits, quotas and propagation need it).
- ``draining``: present (and failing) once SIGTERM started the graceful shutdown.
- ``database``: the database answers. When it does not, the instance stays ready while its
  last snapshot is fresh enough (``serving_last_snapshot``): the snapshot is the current
  configuration version, or was built less than READYZ_SNAPSHOT_MAX_AGE seconds ago.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from redis.backoff import NoBackoff
from redis.retry import Retry

from apigw import runtime
from proxy import configbus
from proxy.gateway.redis_urls import SyncClient, sync_client

# "service" tells our own server from whatever else answers on the port (runplatform).
LIVE = {"status": "ok", "service": "apigw"}


def healthz(request: HttpRequest) -> JsonResponse:
    """Alive: the process answers. No I/O, so a slow database never restarts healthy pods."""
    return JsonResponse(LIVE)


@lru_cache(maxsize=2)
def _probe_client(url: str) -> SyncClient:
    # Short timeouts and no retries: a probe must answer well within a load balancer's timeout.
    # (A cluster client is built inside the check: building it already asks for the slot map.)
    return sync_client(url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))


def redis_check() -> tuple[dict[str, Any], int | None]:
    """The check, and the configuration version Redis holds (None when unreachable)."""
    try:
        raw = _probe_client(settings.REDIS_URL).get(configbus.keys().config_version)
    except (redis.RedisError, OSError) as exc:
        return {"ok": False, "error": type(exc).__name__}, None
    return {"ok": True}, int(raw or 0)


def database_check() -> dict[str, Any]:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means "not reachable" here
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def readiness() -> tuple[dict[str, Any], int]:
    """The /readyz answer and its status. Blocking (Redis and database round trips)."""
    checks: dict[str, dict[str, Any]] = {}
    gateway = runtime.gateway
    snapshot = gateway.store.snapshot if gateway is not None else None
    age = time.time() - snapshot.built_at if snapshot is not None else None
    if gateway is not None:
        checks["snapshot"] = {
            "ok": snapshot is not None,
            "version": snapshot.version if snapshot is not None else None,
            "age_seconds": round(age, 1) if age is not None else None,
        }
        if gateway.drain.draining:
            # SIGTERM: leave the load balancer's rotation at once (proxy/gateway/drain.py).
            checks["draining"] = {"ok": False}
    checks["redis"], current_version = redis_check()
    checks["database"] = database = database_check()
    if not database["ok"]:
        # With a fresh enough snapshot in memory the gateway still serves: report, stay ready.
        max_age = settings.READYZ_SNAPSHOT_MAX_AGE
        database["serving_last_snapshot"] = snapshot is not None and (
            snapshot.version == current_version or not max_age or (age is not None and age <= max_age)
        )
        database["snapshot_max_age_seconds"] = max_age
    ready = all(check["ok"] or check.get("serving_last_snapshot") for check in checks.values())
    return {"status": "ready" if ready else "unready", "checks": checks}, 200 if ready else 503


def readyz(request: HttpRequest) -> JsonResponse:
    body, status = readiness()
    return JsonResponse(body, status=status)
