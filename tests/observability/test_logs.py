"""The access log: one ECS JSON line per request on stdout with the fields Kibana needs, and
never a credential, cookie or token in any line the gateway process writes."""

from __future__ import annotations

import calendar
import re
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from tests import factories
from tests.observability.conftest import access_lines
from tests.servers import ROOT, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
# Looks like a JWT to any scanner; the route takes API keys only, so it is refused (401).
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImF6cCI6ImFjbWUifQ."
    "c2lnbmF0dXJlLXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ"
)
COOKIE_VALUE = "cookie-secret-5f1d8a"
BASIC = "dXNlcjpodW50ZXIy"  # user:hunter2
UNKNOWN_KEY = "gw_abcdefgh_ThisSecretIsNotKnownToTheGateway0"


@pytest.fixture
def partner_key(demo_upstream: str) -> dict[str, Any]:
    """alice's partner "acme" calls the demo API with her key."""
    upstream = factories.upstream(name="obs-demo", targets=[demo_upstream])
    product = factories.product(slug="smart-home", name="Smart home")
    plan = factories.plan(slug="basic", per_minute=1000)
    partner = factories.partner(slug="acme")
    factories.subscription(partner=partner, product=product, plan=plan)
    key, secret = factories.api_key(partner=partner, name="alice")
    factories.route(
        upstream=upstream, name="obs-private", path="/api/v1", auth="key", product=product, allow_query_key=True
    )
    return {"prefix": key.prefix, "secret": secret, "upstream": demo_upstream}


def test_each_request_writes_one_ecs_line_with_its_fields(partner_key: dict[str, Any], start_gateway: Any) -> None:
    base, proc = start_gateway()
    headers = {
        "Authorization": f"Bearer {partner_key['secret']}",
        "User-Agent": "obs-test/1.0",
        "X-Request-ID": "obs-req-1",
        "traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01",
    }
    before = time.time()
    response = httpx.get(base + "/api/v1/appliances", headers=headers, timeout=10)
    assert response.status_code == 200
    assert httpx.get(base + "/api/v1/appliances", timeout=10).status_code == 401

    wait_until(lambda: len(access_lines(proc)) == 2, timeout=5)
    ok, refused = access_lines(proc)
    assert ok["log.level"] == "info"
    assert ok["message"].startswith("GET /api/v1/appliances 200 ")
    assert ok["ecs.version"]
    assert ok["@timestamp"].endswith("Z")
    assert abs(calendar.timegm(time.strptime(ok["@timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) - before) < 10
    assert ok["http"] == {
        "request": {"method": "GET", "id": "obs-req-1"},
        "response": {"status_code": 200, "body": {"bytes": len(response.content)}},
    }
    assert ok["url"] == {"path": "/api/v1/appliances", "domain": "127.0.0.1"}
    assert ok["client"] == {"ip": "127.0.0.1"}
    assert ok["user_agent"] == {"original": "obs-test/1.0"}
    assert ok["event"]["dataset"] == "apigw.access"
    assert ok["event"]["outcome"] == "success"
    assert ok["trace"] == {"id": CALLER_TRACE}
    assert re.fullmatch(r"[0-9a-f]{16}", ok["span"]["id"]) and ok["span"]["id"] != "00f067aa0ba902b7"
    apigw = ok["apigw"]
    assert apigw["route"] == "obs-private"
    assert apigw["partner"] == "acme"
    assert apigw["key_prefix"] == partner_key["prefix"]
    assert apigw["plan"] == "basic"
    assert apigw["ratelimit"] == {"outcome": "allowed"}
    upstream = apigw["upstream"]
    assert upstream["name"] == "obs-demo"
    assert upstream["address"] == partner_key["upstream"].removeprefix("http://")
    duration_ns = ok["event"]["duration"]
    assert 0 < upstream["duration_ms"] * 1e6 <= duration_ns < 10e9

    assert refused["http"]["response"]["status_code"] == 401
    assert refused["event"]["outcome"] == "failure"
    assert refused["error"] == {"code": "unauthorized"}
    assert "partner" not in refused["apigw"] and "upstream" not in refused["apigw"]
    assert re.fullmatch(r"[0-9a-f]{32}", refused["trace"]["id"])  # a new trace when the caller sent none


def test_no_credential_cookie_or_token_reaches_any_log_line(partner_key: dict[str, Any], start_gateway: Any) -> None:
    base, proc = start_gateway(LOG_LEVEL="debug")
    key = partner_key["secret"]
    cookie = {"Cookie": f"session={COOKIE_VALUE}; theme=dark"}
    attempts = [
        ({"Authorization": f"Bearer {key}", **cookie}, "", 200),
        ({"X-API-Key": key}, "", 200),
        ({}, f"?api_key={key}&page=2", 200),
        ({"Authorization": f"Bearer {JWT}"}, "", 401),
        ({"Authorization": f"Bearer {UNKNOWN_KEY}"}, "", 401),
        ({"X-API-Key": UNKNOWN_KEY, **cookie}, "", 401),
        ({"Authorization": f"Basic {BASIC}"}, "", 401),
        ({}, f"?api_key={UNKNOWN_KEY}", 401),
    ]
    for headers, query, expected in attempts:
        response = httpx.get(base + "/api/v1/appliances" + query, headers=headers, timeout=10)
        assert response.status_code == expected, (headers, query, response.text)
    wait_until(lambda: len(access_lines(proc)) == len(attempts), timeout=5)

    output = proc.log_path.read_text(errors="replace")
    secret_part = key.split("_", 2)[2]
    for secret in (key, secret_part, COOKIE_VALUE, JWT, JWT.split(".")[1], BASIC, UNKNOWN_KEY, UNKNOWN_KEY[12:]):
        assert secret not in output
    # The key's public prefix is what identifies it in logs.
    assert [line["apigw"].get("key_prefix") for line in access_lines(proc)[:3]] == [partner_key["prefix"]] * 3


def test_console_format_and_level_come_from_the_environment(partner_key: dict[str, Any], start_gateway: Any) -> None:
    base, proc = start_gateway(LOG_FORMAT="console")
    assert httpx.get(base + "/api/v1/appliances", headers={"X-API-Key": partner_key["secret"]}).status_code == 200

    def console_lines() -> list[str]:
        return [
            line for line in proc.log_path.read_text().splitlines() if " apigw.access GET /api/v1/appliances" in line
        ]

    wait_until(lambda: len(console_lines()) == 1, timeout=5)
    assert re.search(r"INFO apigw\.access GET /api/v1/appliances 200 \d+\.\dms$", console_lines()[0])
    assert not any(line.startswith("{") for line in proc.log_path.read_text().splitlines())


@pytest.mark.parametrize(
    ("env", "enabled"),
    [({}, True), ({"LOG_LEVEL": "warning"}, False), ({"LOG_ACCESS": "false"}, False)],
)
def test_the_access_log_can_be_switched_off(env: dict[str, str], enabled: bool) -> None:
    code = (
        "import logging, django; django.setup(); "
        "print(logging.getLogger('apigw.access').isEnabledFor(logging.INFO), "
        "logging.getLogger('apigw.config').isEnabledFor(logging.INFO))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            "DJANGO_SETTINGS_MODULE": "apigw.settings",
            "DEBUG": "true",
            "PATH": "/usr/bin:/bin",
            "LOG_LEVEL": "info",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    access, other = result.stdout.split()
    assert access == str(enabled)
    assert other == str(env.get("LOG_LEVEL") != "warning")
