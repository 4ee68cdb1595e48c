"""/metrics after known traffic: exact counts, also when two worker processes served it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from django.test import Client

from tests import factories
from tests.observability.conftest import Samples, access_lines, scrape, value
from tests.servers import ROOT, Process, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def routes(demo_upstream: str) -> None:
    upstream = factories.upstream(name="obs-demo", targets=[demo_upstream])
    factories.route(upstream=upstream, name="obs-appliances", path="/api/v1", auth="public")
    factories.route(
        upstream=upstream, name="obs-limited", path="/limited", rewrite="/echo{path}", auth="public", limit_per_minute=5
    )


def send(base: str, requests: list[tuple[str, str]]) -> list[int]:
    """Each request on a connection of its own, many at once: the kernel hands the connections
    to both workers."""

    def one(request: tuple[str, str]) -> int:
        method, path = request
        return httpx.request(method, base + path, headers={"Connection": "close"}, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, requests))


def served_by(proc: Process) -> set[int]:
    return {line["process"]["pid"] for line in access_lines(proc)}


def scrape_when(base: str, ready: Callable[[Samples], bool]) -> Samples:
    """The log phase runs just after the response is sent: give it a moment."""
    found: dict[str, Samples] = {}

    def check() -> bool:
        found["samples"] = scrape(base)
        return ready(found["samples"])

    wait_until(check, timeout=5, interval=0.1)
    return found["samples"]


def test_one_scrape_reports_the_exact_totals_of_two_workers(routes: None, start_gateway: Any) -> None:
    base, proc = start_gateway(workers=2)
    sent = {"ok": 0, "upstream_404": 0, "unmatched": 0, "not_allowed": 0}
    for _ in range(20):  # until both workers have served requests (bounded)
        statuses = send(
            base,
            [("GET", "/api/v1/appliances")] * 24
            + [("GET", "/api/v1/appliances/no-such-thing")] * 4
            + [("GET", "/nowhere")] * 2
            + [("DELETE", "/api/v1/appliances")],
        )
        assert statuses == [200] * 24 + [404] * 6 + [405]
        sent["ok"] += 24
        sent["upstream_404"] += 4
        sent["unmatched"] += 2
        sent["not_allowed"] += 1
        total = sum(sent.values())
        wait_until(lambda total=total: len(access_lines(proc)) == total, timeout=5)
        if len(served_by(proc)) == 2:
            break
    assert len(served_by(proc)) == 2, "one worker served everything; the test proves nothing"

    forwarded = sent["ok"] + sent["upstream_404"] + sent["not_allowed"]
    route = {"route": "obs-appliances"}
    # Workers write their counts once a second (metrics.flush): wait until every series asserted
    # below has them, so one scrape cannot catch one worker between two of its files.
    samples = scrape_when(
        base,
        lambda s: (
            value(s, "apigw_request_duration_seconds_count", **route) >= forwarded
            and value(s, "apigw_gateway_overhead_seconds_count", **route) >= forwarded
            and value(s, "apigw_upstream_duration_seconds_count", **route, upstream="obs-demo") >= forwarded
            and value(s, "apigw_requests_total", **route, method="GET", status="200") >= sent["ok"]
            and value(s, "apigw_requests_total", route="_unmatched", method="GET", status="404") >= sent["unmatched"]
        ),
    )

    assert value(samples, "apigw_requests_total", **route, method="GET", status="200") == sent["ok"]
    assert value(samples, "apigw_requests_total", **route, method="GET", status="404") == sent["upstream_404"]
    assert value(samples, "apigw_requests_total", **route, method="DELETE", status="405") == sent["not_allowed"]
    assert value(samples, "apigw_requests_total", route="_unmatched", method="GET", status="404") == sent["unmatched"]
    for histogram in ("apigw_request_duration_seconds", "apigw_gateway_overhead_seconds"):
        assert value(samples, f"{histogram}_count", **route) == forwarded
        assert value(samples, f"{histogram}_bucket", **route, le="+Inf") == forwarded
    upstream = {**route, "upstream": "obs-demo"}
    assert value(samples, "apigw_upstream_duration_seconds_count", **upstream) == forwarded
    # Nothing was forwarded for unmatched requests: they have a total duration, no upstream one.
    assert value(samples, "apigw_request_duration_seconds_count", route="_unmatched") == sent["unmatched"]
    assert value(samples, "apigw_upstream_duration_seconds_count", route="_unmatched", upstream="") == 0
    # Overhead is total minus upstream: never more than the total.
    assert value(samples, "apigw_gateway_overhead_seconds_sum", **route) < value(
        samples, "apigw_request_duration_seconds_sum", **route
    )
    assert value(samples, "apigw_redis_up") == 1
    # The Django side is measured by django-prometheus (probes are answered before Django).
    assert httpx.get(base + "/admin/login/", timeout=10).status_code == 200
    samples = scrape_when(
        base,
        lambda s: (
            value(
                s,
                "django_http_responses_total_by_status_view_method_total",
                status="200",
                view="admin-login",
                method="GET",
            )
            >= 1
        ),
    )
    assert (
        value(
            samples,
            "django_http_responses_total_by_status_view_method_total",
            status="200",
            view="admin-login",
            method="GET",
        )
        >= 1
    )


def test_it_counts_rate_limit_decisions_by_route_and_outcome(routes: None, start_gateway: Any) -> None:
    base, _ = start_gateway()
    statuses = send(base, [("GET", "/limited/x")] * 8)
    assert sorted(statuses) == [200] * 5 + [429] * 3

    limited = {"route": "obs-limited"}
    samples = scrape_when(base, lambda s: value(s, "apigw_request_duration_seconds_count", **limited) >= 8)
    assert value(samples, "apigw_ratelimit_decisions_total", **limited, outcome="allowed") == 5
    assert value(samples, "apigw_ratelimit_decisions_total", **limited, outcome="rate_limited") == 3
    assert value(samples, "apigw_requests_total", **limited, method="GET", status="429") == 3
    # Refused requests never reached the upstream.
    assert value(samples, "apigw_upstream_duration_seconds_count", **limited, upstream="obs-demo") == 5


def test_metrics_is_loopback_only_by_default(client: Client, settings: Any) -> None:
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    # A private address is no credential: behind a load balancer everyone has one.
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert b"# TYPE apigw_requests_total counter" in response.content

    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    settings.METRICS_ALLOWED_NETWORKS = ["*"]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_metrics_takes_a_bearer_token_from_anywhere(client: Client, settings: Any) -> None:
    settings.METRICS_BEARER_TOKEN = "prom-secret"
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", **outside).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer prom-secret", **outside).status_code == 200


def test_metrics_believes_forwarded_for_only_from_trusted_proxies(client: Client, settings: Any) -> None:
    # A client spoofing X-Forwarded-For: 127.0.0.1 through an untrusted peer is still outside.
    spoof = {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}
    assert client.get("/metrics", **spoof).status_code == 403
    # Through a load balancer, the balancer's loopback/own address is not the client's.
    settings.GATEWAY = {**settings.GATEWAY, "TRUSTED_PROXIES": ["127.0.0.0/8"]}
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403


def test_metrics_speaks_openmetrics_when_asked(client: Client) -> None:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_ACCEPT="application/openmetrics-text")
    assert response["content-type"].startswith("application/openmetrics-text")
    assert response.content.endswith(b"# EOF\n")


def test_a_bad_allowed_network_stops_start_up_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "true", "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,10.0.0.0/33"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS: '10.0.0.0/33' is not a CIDR network" in result.stderr
