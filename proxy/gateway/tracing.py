"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the gateway is one span of a trace.

A valid ``traceparent`` from the caller is kept: same trace id, the gateway's own span id as
the parent of the upstream's span, the caller's sampled flag. A missing or invalid one starts
a new trace. The trace id goes into the access log line (``trace.id``), so Kibana joins the
gateway's line with the upstream's logs and any tracing backend.
"""

from __future__ import annotations

import re

from proxy.gateway.context import RequestContext
from proxy.gateway.ids import random_hex

HEADER = "traceparent"
# version-trace_id-parent_id-flags; later versions may append fields after another dash.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
# New traces are marked sampled: every request is logged with its trace id, and upstreams that
# sample by their parent's decision should record the rest of the trace.
_NEW_TRACE_FLAGS = "01"
_SAMPLED = 0x01


def parse(value: str) -> tuple[str, str] | None:
    """The trace id and flags of a valid ``traceparent`` value, else None."""
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None:
        return None
    version, trace_id, parent_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    # Only the sampled flag is defined by level 1; unknown flags are not passed on.
    return trace_id, "01" if int(flags, 16) & _SAMPLED else "00"


def new_span_id() -> str:
    return random_hex(64)


def new_trace_id() -> str:
    return random_hex(128)


def start_trace(ctx: RequestContext) -> str:
    """Set ``ctx.trace_id`` and ``ctx.span_id`` (the gateway's span) and return the
    ``traceparent`` value to send upstream in place of the caller's."""
    values = ctx.headers.get(HEADER)
    # Two traceparent headers cannot both be right: the spec says start over.
    parsed = parse(values[0]) if values is not None and len(values) == 1 else None
    if parsed is None:
        trace_id, flags = new_trace_id(), _NEW_TRACE_FLAGS
    else:
        trace_id, flags = parsed
    span_id = new_span_id()
    ctx.trace_id = trace_id
    ctx.span_id = span_id
    return f"00-{trace_id}-{span_id}-{flags}"
