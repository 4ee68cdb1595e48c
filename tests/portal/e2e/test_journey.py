"""The whole journey in a real browser: sign up → verify the email → staff approve in Django
admin → subscribe → create a key → call a real gateway with it → usage appears after a flush →
revoke → the gateway answers 401 within a second."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core import mail
from django.db.models import Sum
from playwright.sync_api import expect

from proxy.models import ApiProduct, Plan, UsageHourly
from proxy.usage import flush_usage
from tests import factories as config
from tests.conftest import subprocess_database_url
from tests.portal import factories
from tests.portal.e2e.conftest import ConsoleErrors
from tests.servers import free_port, gateway_process, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


@pytest.fixture
def api(demo_upstream: str) -> tuple[ApiProduct, Plan]:
    upstream = config.upstream(name="demo", targets=[demo_upstream])
    product = factories.make_product(
        "appliances", name="Appliance API v1", description="List appliances, start programs, receive events."
    )
    config.route(upstream=upstream, name="appliances", path="/api/v1", product=product, auth="key")
    return product, factories.make_plan("starter", name="Starter", quota_day=500, quota_month=10_000)


@pytest.fixture
def gateway() -> Iterator[str]:
    port = free_port()
    proc = gateway_process(port, env={"DATABASE_URL": subprocess_database_url()}).start()
    yield f"http://127.0.0.1:{port}"
    proc.stop()


def last_link() -> str:
    found = re.search(r"http://\S+", str(mail.outbox[-1].body))
    assert found, mail.outbox[-1].body
    return found.group(0)


def call(gateway: str, secret: str, path: str = "/api/v1/appliances") -> int:
    try:
        return httpx.get(gateway + path, headers={"Authorization": f"Bearer {secret}"}, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_sign_up_to_revocation(
    live_server: Any, portal_page: Any, browser: Any, api: tuple[ApiProduct, Plan], gateway: str, staff: Any
) -> None:
    page, base = portal_page, live_server.url
    nav = page.get_by_role("navigation", name="Main")
    errors = ConsoleErrors()
    errors.watch(page)

    # 1. Sign up.
    page.goto(f"{base}/portal/")
    page.get_by_role("link", name="Sign up your organisation").click()
    page.get_by_label("Organisation name:").fill("Hearth Voice")
    page.get_by_label("Your name:").fill("Hana Ito")
    page.get_by_label("Work email:").fill("hana@hearth.example")
    page.get_by_label("Password:", exact=True).fill(factories.PASSWORD)
    page.get_by_label("Password again:").fill(factories.PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    # 2. Verify the email address by the link mailed.
    assert mail.outbox[-1].to == ["hana@hearth.example"]
    page.goto(last_link())
    expect(page.get_by_role("heading", name="Your email address is confirmed")).to_be_visible()
    expect(page.get_by_text("waiting for approval")).to_be_visible()
    assert mail.outbox[-1].to == ["staff@platform.example"]  # staff hear of the sign-up

    # 3. Staff approve it in Django admin, in a browser of their own.
    staff_context = browser.new_context()
    admin = staff_context.new_page()
    admin.goto(f"{base}/admin/login/?next=/admin/proxy/partner/")
    admin.fill("#id_username", "staff")
    admin.fill("#id_password", factories.PASSWORD)
    admin.get_by_role("button", name="Log in").click()
    admin.get_by_role("row", name=re.compile("Hearth Voice")).get_by_role("checkbox").check()
    admin.select_option("select[name=action]", "approve")
    admin.get_by_role("button", name="Go").click()
    expect(admin.get_by_text("1 partner(s) approved and emailed.")).to_be_visible()
    staff_context.close()
    assert mail.outbox[-1].to == ["hana@hearth.example"] and "approved" in mail.outbox[-1].subject

    # 4. Log in and subscribe; the product's reference renders with Swagger UI.
    page.goto(f"{base}/portal/login/")
    page.get_by_label("Email:").fill("hana@hearth.example")
    page.get_by_label("Password:").fill(factories.PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Hearth Voice")).to_be_visible()
    nav.get_by_role("link", name="Catalogue").click()
    page.get_by_role("link", name="Appliance API v1").click()
    expect(page.locator("#swagger-ui .opblock-summary-path").first).to_contain_text("/api/v1/appliances")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("row", name=re.compile("Appliance API v1"))).to_contain_text("Active")

    # 5. Create a key; the secret is shown once, with a working copy button.
    nav.get_by_role("link", name="API keys").click()
    page.get_by_role("link", name="Create a key").click()
    page.get_by_label("Name:").fill("voice skill")
    page.get_by_label("Appliance API v1").check()
    page.get_by_role("button", name="Create the key").click()
    secret = page.locator("#secret").input_value()
    assert secret.startswith("gw_")
    page.locator(".secret-box").get_by_role("button", name="Copy").click()  # not the "Try it" command's
    expect(page.get_by_role("status").filter(has_text="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret

    # 6. Call the real gateway with it: 3 successes and one upstream 404.
    wait_until(lambda: call(gateway, secret) == 200, timeout=5)
    assert call(gateway, secret) == 200 and call(gateway, secret) == 200
    assert call(gateway, secret, "/api/v1/appliances/no-such-thing") == 404

    # 7. Usage appears on the portal after a flush.
    def flushed() -> bool:
        flush_usage()
        sums = UsageHourly.objects.aggregate(r=Sum("requests"), ok=Sum("status_2xx"), bad=Sum("status_4xx"))
        return (sums["r"], sums["ok"], sums["bad"]) == (4, 3, 1)

    wait_until(flushed, timeout=15, interval=0.25)
    nav.get_by_role("link", name="Usage").click()
    expect(page.locator("[data-stat=requests]")).to_have_text("4")
    expect(page.locator("[data-stat='2xx']")).to_have_text("3")
    expect(page.locator("[data-stat='4xx']")).to_have_text("1")
    expect(page.locator("svg.chart rect").first).to_be_attached()
    expect(page.get_by_text("of 500 used")).to_be_visible()  # the daily quota, from the gateway's counter
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    with open(download_info.value.path(), newline="") as fh:
        assert sum(int(row["requests"]) for row in csv.DictReader(fh)) == 4
    nav.get_by_role("link", name="API keys").click()
    key_row = page.get_by_role("row", name=re.compile("voice skill"))
    expect(key_row.locator("[data-col=last-used]")).not_to_have_text("never")

    # 8. Revoke: every gateway refuses the key within a second.
    key_row.get_by_role("link", name="Revoke").click()
    page.get_by_role("button", name="Revoke the key").click()
    expect(page.get_by_text("is revoked")).to_be_visible()
    took = wait_until(lambda: call(gateway, secret) == 401, timeout=1.0)
    assert took < 1.0
    expect(page.get_by_role("row", name=re.compile("voice skill"))).to_contain_text("Revoked")

    assert errors == [], errors  # no CSP violation, no script error on any page
