"""Every main page in a real browser: it renders with no CSP violation or script error, fits a
phone's width, and is saved as a screenshot (var/test-screenshots/pages/, or the folder in
PORTAL_SCREENSHOTS_DIR: scripts/portal-screenshots.sh refreshes docs/screenshots/ this way)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from portal import reports
from portal.models import PartnerMembership
from proxy import configbus
from proxy.models import ApiKey
from tests.portal import factories
from tests.portal.e2e.conftest import ConsoleErrors
from tests.servers import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

OUT = Path(os.environ.get("PORTAL_SCREENSHOTS_DIR") or ROOT / "var" / "test-screenshots" / "pages")

OPENAPI = {
    "openapi": "3.0.3",
    "info": {
        "title": "Appliance API",
        "version": "1.0.0",
        "description": "List the appliances of a home, start and stop programs, follow their events.",
    },
    "servers": [{"url": "/"}],
    "components": {"securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
    "security": [{"apiKey": []}],
    "paths": {
        "/api/v1/appliances": {
            "get": {
                "summary": "List appliances",
                "tags": ["appliances"],
                "responses": {"200": {"description": "The appliances"}},
            }
        },
        "/api/v1/appliances/{id}": {
            "get": {
                "summary": "Get one appliance",
                "tags": ["appliances"],
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The appliance"}, "404": {"description": "No such appliance"}},
            }
        },
        "/api/v1/appliances/{id}/program": {
            "put": {
                "summary": "Start a program",
                "tags": ["programs"],
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"202": {"description": "Started"}},
            },
            "delete": {
                "summary": "Stop the program",
                "tags": ["programs"],
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"204": {"description": "Stopped"}},
            },
        },
        "/api/v1/events": {
            "get": {
                "summary": "Server-sent appliance events",
                "tags": ["events"],
                "responses": {"200": {"description": "text/event-stream"}},
            }
        },
    },
}


@pytest.fixture
def hearth() -> Iterator[PartnerMembership]:
    """A partner a few weeks in: subscriptions, keys, a team, and a week of traffic."""
    appliances = factories.make_product(
        "appliance-api-v1",
        name="Appliance API v1",
        openapi=OPENAPI,
        description="List appliances, start programs, receive events.",
    )
    energy = factories.make_product(
        "energy-insights",
        name="Energy insights",
        approval="manual",
        openapi=None,
        description="Hourly energy use per appliance, for dashboards and tariffs.",
    )
    factories.make_plan(
        "starter",
        name="Starter",
        description="For development and small skills.",
        per_minute=60,
        quota_day=5_000,
        quota_month=100_000,
    )
    pro = factories.make_plan(
        "pro",
        name="Pro",
        description="For production voice assistants.",
        per_second=50,
        per_minute=1_200,
        quota_day=None,
        quota_month=2_000_000,
    )
    hana = factories.make_member("hana@hearth.example", "hearth-voice")
    hana.partner.name = "Hearth Voice"
    hana.partner.save()
    hana.user.first_name = "Hana Ito"
    hana.user.save()
    factories.make_member("ken@hearth.example", hana.partner, role="developer")
    factories.invite(hana.partner, "mia@hearth.example", invited_by=hana.user)
    factories.subscribe(hana.partner, appliances, pro)
    factories.subscribe(hana.partner, energy, pro, status="pending")
    prod = factories.make_key(hana.partner, "voice skill (production)", [appliances])
    staging = factories.make_key(hana.partner, "staging")
    # Revoked by update(): no signal, so no config announcement from this thread (no gateway runs here).
    ApiKey.objects.filter(pk=factories.make_key(hana.partner, "old laptop").pk).update(revoked_at=timezone.now())
    ApiKey.objects.filter(pk=prod.pk).update(last_used_at=timezone.now() - timedelta(minutes=3))
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    total = 0
    for h in range(7 * 24):
        hour = now - timedelta(hours=h)
        rush = 1 + math.sin((hour.hour - 12) / 24 * 2 * math.pi)  # quiet at night, busy in the evening
        requests = int(900 * rush) + 40
        errors = requests // 60
        factories.usage(
            hana.partner,
            hour,
            key=prod,
            product="appliance-api-v1",
            requests=requests,
            status_2xx=requests - 2 * errors - 3,
            status_4xx=errors,
            status_5xx=errors // 3,
            status_429=3,
            latency_ms_sum=(requests - 3) * 38,
        )
        factories.usage(
            hana.partner,
            hour,
            key=staging,
            product="appliance-api-v1",
            requests=20,
            status_2xx=20,
            latency_ms_sum=20 * 45,
        )
        total += requests + 20 - 3
    counters = {
        reports.quota_counter_key(f"p{hana.partner.pk}", "appliance-api-v1", period, timezone.now()): used
        for period, used in (("month", total + 600_000), ("day", 21_000))
    }
    configbus.redis_client().mset(counters)
    team = factories.make_plan("team", scope="partner", quota_month=1_500_000, quota_day=60_000, public=False)
    factories.subscribe(hana.partner, appliances, team)
    yield hana
    configbus.redis_client().delete(*counters)


# What sticks out of the screen (for the failure message): elements no scrolling box contains.
WIDER_THAN_SCREEN = """Array.from(document.querySelectorAll('body *')).filter(e => {
  if (e.getBoundingClientRect().right <= window.innerWidth + 1) return false;
  for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible') return false;
  }
  return true;
}).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 5)"""


def shoot(page: Any, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)


def test_the_main_pages_render_cleanly(live_server: Any, portal_page: Any, hearth: PartnerMembership) -> None:
    page, base = portal_page, live_server.url
    errors = ConsoleErrors()
    errors.watch(page)

    page.goto(f"{base}/portal/")
    shoot(page, "home")
    page.goto(f"{base}/portal/signup/")
    shoot(page, "signup")
    page.goto(f"{base}/portal/login/")
    page.get_by_label("Email:").fill("hana@hearth.example")
    page.get_by_label("Password:").fill(factories.PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Hearth Voice")).to_be_visible()
    shoot(page, "dashboard")

    page.goto(f"{base}/portal/catalogue/")
    shoot(page, "catalogue")
    page.goto(f"{base}/portal/catalogue/appliance-api-v1/")
    expect(page.locator("#swagger-ui .opblock").first).to_be_visible()
    expect(page.locator("#swagger-ui")).to_contain_text("Start a program")
    shoot(page, "product-with-swagger-ui")

    page.goto(f"{base}/portal/keys/")
    expect(page.get_by_role("row", name="old laptop")).to_contain_text("Revoked")
    shoot(page, "keys")
    page.goto(f"{base}/portal/keys/new/")
    page.get_by_label("Name:").fill("home automation bridge")
    page.get_by_role("button", name="Create the key").click()
    assert page.locator("#secret").input_value().startswith("gw_")
    shoot(page, "key-created")

    page.goto(f"{base}/portal/usage/?range=7d")
    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.get_by_text("All keys together")).to_be_visible()
    shoot(page, "usage")

    page.goto(f"{base}/portal/team/")
    expect(page.get_by_text("mia@hearth.example")).to_be_visible()
    shoot(page, "team")

    # A phone: nothing wider than the screen (tables scroll inside their own box).
    page.set_viewport_size({"width": 390, "height": 844})
    phone_pages = [
        "/portal/",
        "/portal/catalogue/appliance-api-v1/",
        "/portal/subscriptions/",
        "/portal/keys/",
        "/portal/usage/?range=24h",
        "/portal/team/",
        "/portal/organisation/",
    ]
    for path in phone_pages:
        page.goto(base + path)
        fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits, (path, page.evaluate(WIDER_THAN_SCREEN))
        if path.startswith("/portal/usage/"):
            shoot(page, "usage-phone")

    assert errors == [], errors
