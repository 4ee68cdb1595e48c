"""Phase 5, log: one access-log line per request, written after the response is sent."""

from __future__ import annotations

import logging
import time

from proxy.gateway.context import RequestContext

log = logging.getLogger("apigw.access")


def emit(ctx: RequestContext) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    duration = time.perf_counter() - ctx.started
    route = ctx.match.route.name if ctx.match is not None else ""
    upstream_ms = ((ctx.upstream_finished - ctx.upstream_started) * 1000) if ctx.upstream_started else None
    # Fields go in ``extra`` so the JSON formatter emits them as ECS fields; the message itself
    # stays readable in console format. Never the Authorization header, cookies or keys.
    log.info(
        "%s %s %s %.1fms",
        ctx.method,
        ctx.path,
        ctx.status,
        duration * 1000,
        extra={
            "http.request.method": ctx.method,
            "url.path": ctx.path,
            "http.response.status_code": ctx.status,
            "event.duration": int(duration * 1e9),
            "client.ip": ctx.client_ip,
            "http.request.id": ctx.request_id,
            "apigw.route": route,
            "apigw.upstream.address": ctx.target.authority if ctx.target is not None else None,
            "apigw.upstream.duration_ms": upstream_ms,
            "error.code": ctx.error_code or None,
        },
    )
