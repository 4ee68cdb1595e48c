"""The log phase in-process: metrics without log work when the access log is off, bounded
per-partner labels, the JSON line's shape, and the filter that masks secrets elsewhere."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from apigw.ecsjson import EcsFormatter, RedactSecrets, redact
from proxy.gateway import accesslog, apikeys, metrics
from proxy.gateway.context import RequestContext
from proxy.gateway.routing import Route, RouteMatch
from tests.servers import wait_until

PEPPER = b"observability-test-pepper"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def context() -> RequestContext:
    return RequestContext(
        method="GET",
        path="/x",
        raw_path=b"/x",
        query_string=b"",
        raw_headers=[],
        headers={},
        host="",
        scheme="http",
        client_ip="127.0.0.1",
        request_id="r",
        started=time.perf_counter(),
    )


@pytest.fixture
def access_log_off() -> Iterator[None]:
    logger = logging.getLogger("apigw.access")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def test_with_the_access_log_off_it_counts_but_builds_no_line(
    access_log_off: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any) -> None:
        raise AssertionError("log fields built while the access log is off")

    monkeypatch.setattr(accesslog, "_request_fields", fail)
    before = sample("apigw_requests_total", route=metrics.UNMATCHED, method="GET", status="404")
    ctx = context()
    ctx.status = 404
    accesslog.emit(ctx)
    assert sample("apigw_requests_total", route=metrics.UNMATCHED, method="GET", status="404") == before + 1
    assert ctx.trace_id == ""  # not even a trace id was made


def test_unusual_methods_share_one_label() -> None:
    before = sample("apigw_requests_total", route=metrics.UNMATCHED, method="_other", status="404")
    for method in ("BREW", "PROPFIND", "X" * 50):
        ctx = context()
        ctx.method, ctx.status = method, 404
        accesslog.emit(ctx)
    assert sample("apigw_requests_total", route=metrics.UNMATCHED, method="_other", status="404") == before + 3


def test_a_request_that_died_without_a_status_counts_as_500() -> None:
    before = sample("apigw_requests_total", route=metrics.UNMATCHED, method="GET", status="500")
    accesslog.emit(context())
    assert sample("apigw_requests_total", route=metrics.UNMATCHED, method="GET", status="500") == before + 1


@pytest.fixture
def partner_labels() -> Iterator[None]:
    metrics.configure(partner_labels_spec="acme")
    yield
    metrics.configure()


def test_partner_labels_cover_only_the_configured_partners(
    partner_labels: None, static_gateway: Any, demo_upstream: str
) -> None:
    """acme (listed) gets its own series; globex (not listed) is counted as _other."""
    acme_key, acme_prefix = apikeys.generate()
    globex_key, globex_prefix = apikeys.generate()
    data = {
        "upstreams": [{"name": "demo", "targets": [{"url": demo_upstream}]}],
        "routes": [{"name": "obs-partner", "path": "/api/v1", "upstream": "demo", "auth": "key", "product": "smart"}],
        "plans": [{"slug": "tiny", "scope": "key", "limits": {"minute": 2}, "quotas": {}}],
        "partners": [
            {"id": 1, "slug": "acme", "status": "active", "subscriptions": {"smart": "tiny"}},
            {"id": 2, "slug": "globex", "status": "active", "subscriptions": {"smart": "tiny"}},
        ],
        "keys": [
            {"id": 1, "prefix": acme_prefix, "hash": apikeys.digest(PEPPER, acme_key), "partner": 1},
            {"id": 2, "prefix": globex_prefix, "hash": apikeys.digest(PEPPER, globex_key), "partner": 2},
        ],
    }
    server = static_gateway(data, api_key_pepper=PEPPER)
    acme = {"partner": "acme", "outcome": "allowed", "status_class": "2xx"}
    acme_limited = {"partner": "acme", "outcome": "rate_limited", "status_class": "4xx"}
    other = {"partner": "_other", "outcome": "allowed", "status_class": "2xx"}
    before = {
        name: sample("apigw_partner_requests_total", **labels)
        for name, labels in (("acme", acme), ("limited", acme_limited), ("other", other))
    }

    statuses = [
        httpx.get(server.url + "/api/v1/appliances", headers={"X-API-Key": acme_key}).status_code for _ in range(3)
    ]
    statuses.append(httpx.get(server.url + "/api/v1/appliances", headers={"X-API-Key": globex_key}).status_code)
    assert statuses == [200, 200, 429, 200]

    wait_until(lambda: sample("apigw_partner_requests_total", **other) == before["other"] + 1, timeout=5)
    assert sample("apigw_partner_requests_total", **acme) == before["acme"] + 2
    assert sample("apigw_partner_requests_total", **acme_limited) == before["limited"] + 1
    assert sample("apigw_partner_requests_total", partner="globex", outcome="allowed", status_class="2xx") == 0


def test_every_partner_up_to_the_bound() -> None:
    labels = metrics.PartnerLabels("*", limit=2)
    assert [labels.label(p) for p in ("a", "b", "c", "a", "d", "b")] == ["a", "b", "_other", "a", "_other", "b"]
    assert not metrics.PartnerLabels("").enabled


def formatted(
    record_fields: dict[str, Any] | None, message: str = "GET /x 200 1.0ms", name: str = "apigw.access"
) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EcsFormatter())
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        logger.info(message, extra={"ecs_fields": record_fields} if record_fields is not None else None)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(old_level)
    return stream.getvalue()


def test_the_json_line_puts_timestamp_level_and_message_first_and_drops_empty_fields() -> None:
    line = formatted({"http": {"request": {"method": "GET"}}, "apigw": {"partner": None, "route": "r"}, "error": {}})
    assert line.startswith('{"@timestamp":"') and line.endswith("}\n")
    assert list(json.loads(line))[:3] == ["@timestamp", "log.level", "message"]
    parsed = json.loads(line)
    assert parsed["apigw"] == {"route": "r"}
    assert "error" not in parsed
    assert parsed["log"] == {"logger": "apigw.access"}


def test_other_records_go_through_ecs_logging_and_are_redacted() -> None:
    key = "gw_abcdefgh_" + "S" * 32
    line = json.loads(formatted(None, f"upstream said: Authorization: Bearer {key}", name="apigw.test"))
    assert key not in json.dumps(line)
    assert line["message"] == "upstream said: Authorization: [REDACTED]"
    assert line["log"]["logger"] == "apigw.test"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key gw_abcdefgh_" + "A1b2" * 8 + " refused", "key gw_abcdefgh_[REDACTED] refused"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here", "token [REDACTED] here"),
        ("Bearer abcdef123456", "Bearer [REDACTED]"),
        ("GET /x?api_key=secret123&page=2", "GET /x?api_key=[REDACTED]&page=2"),
        ("{'cookie': 'session=abc; theme=dark'}", "{'cookie': '[REDACTED]; theme=dark'}"),
        ("password=hunter2", "password=[REDACTED]"),
        ("nothing to see at /api/v1/appliances", "nothing to see at /api/v1/appliances"),
    ],
)
def test_redaction_masks_credentials(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_secret_in_an_exception_is_masked_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("apigw.test.exc")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise ValueError("bad header Authorization: Bearer s3cr3t-t0ken")
    except ValueError:
        logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert "s3cr3t-t0ken" not in stream.getvalue()
    assert "ValueError" in stream.getvalue()


def test_a_websocket_session_is_counted_but_kept_out_of_the_latency_histograms() -> None:
    route = Route({"name": "obs-ws", "path": "/ws", "upstream": "demo"})
    ctx = context()
    ctx.match = RouteMatch(route=route, params={}, tail="")
    ctx.status = 101
    ctx.upstream_started = ctx.started
    ctx.upstream_finished = ctx.started + 0.5
    accesslog.emit(ctx)
    assert sample("apigw_requests_total", route="obs-ws", method="GET", status="101") == 1
    assert sample("apigw_stream_duration_seconds_count", route="obs-ws") == 1
    assert sample("apigw_request_duration_seconds_count", route="obs-ws") == 0
    assert sample("apigw_upstream_duration_seconds_count", route="obs-ws", upstream="demo") == 0
