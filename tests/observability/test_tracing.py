"""W3C traceparent: kept from the caller or generated, and forwarded upstream."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from proxy.gateway import tracing
from proxy.gateway.context import RequestContext

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])")


def context(**headers: str | list[str]) -> RequestContext:
    values = {name: value if isinstance(value, list) else [value] for name, value in headers.items()}
    return RequestContext(
        method="GET",
        path="/",
        raw_path=b"/",
        query_string=b"",
        raw_headers=[],
        headers=values,
        host="",
        scheme="http",
        client_ip="127.0.0.1",
        request_id="r",
        started=time.perf_counter(),
    )


def test_it_keeps_the_callers_trace_and_becomes_the_parent_span() -> None:
    ctx = context(traceparent=f"00-{TRACE}-{PARENT}-01")
    value = tracing.start_trace(ctx)
    found = _TRACEPARENT.fullmatch(value)
    assert found is not None
    assert found.groups() == (TRACE, ctx.span_id, "01")
    assert ctx.trace_id == TRACE
    assert ctx.span_id != PARENT


def test_it_keeps_the_callers_sampling_decision() -> None:
    assert tracing.start_trace(context(traceparent=f"00-{TRACE}-{PARENT}-00")).endswith("-00")
    # Flags this version does not define are not passed on.
    assert tracing.start_trace(context(traceparent=f"00-{TRACE}-{PARENT}-09")).endswith("-01")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{PARENT}-01",  # ids are lower-case hex
        f"ff-{TRACE}-{PARENT}-01",  # forbidden version
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE[:-1]}-{PARENT}-01",
        [f"00-{TRACE}-{PARENT}-01", f"00-{TRACE}-{PARENT}-01"],  # twice: cannot trust either
    ],
)
def test_it_starts_a_new_trace_when_the_callers_is_missing_or_invalid(header: Any) -> None:
    ctx = context() if header is None else context(traceparent=header)
    value = tracing.start_trace(ctx)
    found = _TRACEPARENT.fullmatch(value)
    assert found is not None
    assert found.groups() == (ctx.trace_id, ctx.span_id, "01")
    assert ctx.trace_id != TRACE and ctx.trace_id != "0" * 32


def test_a_later_version_is_read_for_the_fields_it_shares() -> None:
    ctx = context(traceparent=f"01-{TRACE}-{PARENT}-01-what-comes-next")
    assert tracing.start_trace(ctx).startswith(f"00-{TRACE}-")


def test_ids_are_unique() -> None:
    ctxs = [context() for _ in range(1000)]
    for ctx in ctxs:
        tracing.start_trace(ctx)
    assert len({c.trace_id for c in ctxs}) == len({c.span_id for c in ctxs}) == 1000


def test_the_upstream_receives_the_trace_with_the_gateway_as_parent(static_gateway: Any, demo_upstream: str) -> None:
    server = static_gateway(
        {
            "upstreams": [{"name": "demo", "targets": [{"url": demo_upstream}]}],
            "routes": [{"name": "echo", "path": "/echo", "upstream": "demo", "auth": "public"}],
        }
    )
    sent = f"00-{TRACE}-{PARENT}-01"
    received = httpx.get(server.url + "/echo/x", headers={"traceparent": sent}).json()["headers"]["traceparent"]
    found = _TRACEPARENT.fullmatch(received)
    assert found is not None and found.group(1) == TRACE and found.group(2) != PARENT

    fresh = httpx.get(server.url + "/echo/x").json()["headers"]["traceparent"]
    assert _TRACEPARENT.fullmatch(fresh)
