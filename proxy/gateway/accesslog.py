"""Phase 5, log: Prometheus observations and one access-log line per request, after the
response is sent (for a WebSocket, when the session ends).

Only fields the gateway chose go in: never request headers other than the User-Agent, never
the query string (``?api_key=``), so credentials, cookies and tokens cannot reach a log line.
docs/logging.md describes every field.

Two ways to the same line:

- **Direct** (a running gateway whose access lines go to the JSON batch writer, found by
  ``start()``): the line is written out field by field with the C string escaper
  (``encode_basestring_ascii``, what ``json.dumps`` uses) and a suffix built once per process,
  and queued on the writer (logwriter.py), which writes it from its own thread within 100 ms.
  No ``LogRecord``, no nested dict, no syscall on the loop: ≈ 6 µs a line instead of ≈ 60 µs.
- **Through logging** (console format, a handler of someone else's, no ``start()``): the fields
  as one nested ECS dict in ``extra={"ecs_fields": ...}``, which apigw/ecsjson.py writes out.

Both give the same JSON (tests/observability/test_accesslog_line.py compares them on hostile
values: quotes, backslashes, control characters, undecodable bytes).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from proxy.gateway import logwriter, metrics, tracing
from proxy.gateway.context import RequestContext

log = logging.getLogger("apigw.access")
_INFO = logging.INFO

# Set by start(): where finished JSON lines go, and the end every line shares.
_write: Callable[[str], None] | None = None
_suffix = ""
# The "@timestamp" text up to the second, rebuilt once a second.
_second = -1
_second_text = ""


def start() -> bool:
    """Turn batching on in the batch writers this process logs to, and write access lines
    directly when they would reach only the JSON batch writer; returns whether they will.
    Called when the gateway starts (after logging was configured)."""
    global _write, _suffix
    _write = None
    for handler in _handlers():
        handler.start_batching()
    writer = logwriter.batch_writer(log)
    if writer is None or not getattr(writer.formatter, "ecs_json", False):
        return False
    probe = log.makeRecord(log.name, _INFO, __file__, 0, "", (), None)
    if not writer.filter(probe):  # a handler filter that drops or rewrites access lines
        return False
    from ecs_logging import ECS_VERSION  # the formatter's version, for lines written directly

    _suffix = (
        f',"ecs.version":{_quote(ECS_VERSION)},"log":{{"logger":{_quote(log.name)}}},'
        f'"process":{{"pid":{os.getpid()}}}}}\n'
    )
    writer.on_drop = metrics.LOG_LINES_DROPPED.inc
    _write = writer.write_line
    return True


def stop() -> None:
    """Write every queued line now, and later ones at once (graceful stop)."""
    global _write
    _write = None
    for handler in _handlers():
        handler.stop_batching()


def _handlers() -> list[logwriter.BatchedStreamHandler]:
    """The batch writers of the loggers the gateway writes to (settings.LOGGING: the root's)."""
    loggers = [logging.getLogger(), log, logging.getLogger("apigw.gateway"), logging.getLogger("uvicorn")]
    return list({h for lg in loggers for h in lg.handlers if isinstance(h, logwriter.BatchedStreamHandler)})


def emit(ctx: RequestContext) -> None:
    """Record a finished request: metrics always, the log line when INFO is enabled."""
    duration = time.perf_counter() - ctx.started
    # Status 0: an unexpected exception is on its way out, and the server will answer 500.
    status = ctx.status or 500
    match = ctx.match
    route = match.route.name if match is not None else metrics.UNMATCHED
    upstream = (match.route.upstream or "") if match is not None else ""
    upstream_seconds = (ctx.upstream_finished - ctx.upstream_started) if ctx.upstream_started else None
    identity = ctx.identity
    partner = identity.partner_slug if identity is not None else None
    metrics.observe_request(
        route=route,
        upstream=upstream,
        method=ctx.method,
        status=status,
        outcome=ctx.limit_outcome,
        seconds=duration,
        upstream_seconds=upstream_seconds,
        partner=partner,
        # A WebSocket session (101) or an event stream lasts as long as the client stays: its
        # duration is not a latency.
        streamed=status == 101 or ctx.streamed,
    )
    if not log.isEnabledFor(_INFO):
        return
    if not ctx.trace_id:  # the trace was not started before forwarding; the line still gets one
        tracing.start_trace(ctx)
    route_name = route if match is not None else None
    write = _write
    if write is not None:
        write(_json_line(ctx, status, duration, route_name, upstream, upstream_seconds))
        return
    fields = _request_fields(ctx, status, duration, route_name)
    apigw: dict[str, Any] = fields["apigw"]
    if upstream_seconds is not None:
        target = ctx.target
        apigw["upstream"] = {
            "name": upstream,
            "address": target.authority if target is not None else None,
            "duration_ms": round(upstream_seconds * 1000, 3),
        }
    if identity is not None:
        apigw["partner"] = partner
        apigw["key_prefix"] = identity.key_prefix
        apigw["plan"] = identity.plan_slug
    if status == 101:
        apigw["websocket"] = {
            "messages_up": ctx.ws_messages_up,
            "messages_down": ctx.ws_messages_down,
        }
    log.info("%s %s %s %.1fms", ctx.method, ctx.path, status, duration * 1000, extra={"ecs_fields": fields})


def _request_fields(ctx: RequestContext, status: int, duration: float, route: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {"status_code": status}
    if ctx.bytes_sent:
        response["body"] = {"bytes": ctx.bytes_sent}
    fields: dict[str, Any] = {
        "event": {
            "dataset": "apigw.access",
            "duration": int(duration * 1e9),
            "outcome": "failure" if status >= 400 else "success",
        },
        "http": {"request": {"method": ctx.method, "id": ctx.request_id}, "response": response},
        "url": {"path": ctx.path, "domain": ctx.host or None},
        "client": {"ip": ctx.client_ip},
        "trace": {"id": ctx.trace_id},
        "span": {"id": ctx.span_id},
        "apigw": {"route": route, "ratelimit": {"outcome": ctx.limit_outcome or None}},
    }
    user_agent = ctx.header("user-agent")
    if user_agent is not None:
        fields["user_agent"] = {"original": user_agent}
    if ctx.error_code:
        fields["error"] = {"code": ctx.error_code}
    return fields


def _json_line(
    ctx: RequestContext,
    status: int,
    duration: float,
    route: str | None,
    upstream: str,
    upstream_seconds: float | None,
) -> str:
    """The line ``_request_fields`` + apigw/ecsjson.py would write, field for field and in the
    same order (fields without a value left out)."""
    global _second, _second_text
    now = time.time()
    second = int(now)
    if second != _second:  # strftime once a second, not once a line
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    message = "%s %s %s %.1fms" % (ctx.method, ctx.path, status, duration * 1000)  # noqa: UP031 (as logging does)
    parts = [
        f'{{"@timestamp":"{_second_text}.{int((now - second) * 1000):03d}Z","log.level":"info",'
        f'"message":{_quote(message)},"event":{{"dataset":"apigw.access","duration":{int(duration * 1e9)},'
        f'"outcome":"{"failure" if status >= 400 else "success"}"}},'
        f'"http":{{"request":{{"method":{_quote(ctx.method)},"id":{_quote(ctx.request_id)}}},'
        f'"response":{{"status_code":{status}'
    ]
    if ctx.bytes_sent:
        parts.append(f',"body":{{"bytes":{ctx.bytes_sent}}}')
    parts.append(f'}}}},"url":{{"path":{_quote(ctx.path)}')
    if ctx.host:
        parts.append(f',"domain":{_quote(ctx.host)}')
    parts.append(
        f'}},"client":{{"ip":{_quote(ctx.client_ip)}}},"trace":{{"id":{_quote(ctx.trace_id)}}},'
        f'"span":{{"id":{_quote(ctx.span_id)}}}'
    )
    apigw = []
    if route is not None:
        apigw.append(f'"route":{_quote(route)}')
    if ctx.limit_outcome:
        apigw.append(f'"ratelimit":{{"outcome":{_quote(ctx.limit_outcome)}}}')
    if upstream_seconds is not None:
        target = ctx.target
        address = f',"address":{_quote(target.authority)}' if target is not None else ""
        apigw.append(
            f'"upstream":{{"name":{_quote(upstream)}{address},"duration_ms":{round(upstream_seconds * 1000, 3)!r}}}'
        )
    identity = ctx.identity
    if identity is not None:
        apigw.append(f'"partner":{_quote(identity.partner_slug)}')
        if (key_prefix := identity.key_prefix) is not None:
            apigw.append(f'"key_prefix":{_quote(key_prefix)}')
        if (plan := identity.plan_slug) is not None:
            apigw.append(f'"plan":{_quote(plan)}')
    if status == 101:
        apigw.append(f'"websocket":{{"messages_up":{ctx.ws_messages_up},"messages_down":{ctx.ws_messages_down}}}')
    if apigw:
        parts.append(',"apigw":{' + ",".join(apigw) + "}")
    user_agent = ctx.header("user-agent")
    if user_agent is not None:
        parts.append(f',"user_agent":{{"original":{_quote(user_agent)}}}')
    if ctx.error_code:
        parts.append(f',"error":{{"code":{_quote(ctx.error_code)}}}')
    parts.append(_suffix)
    return "".join(parts)
