"""A partner finds what to call, in a real browser against a real gateway process (which serves
the portal too, as in ``make run``) and the demo upstream: Swagger UI's "Try it out" on the demo
product calls the gateway with the partner's key; the new-key page's command works as shown; on a
390 px phone the keys table shows status and actions without sideways scrolling."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from apigw.management.commands.loaddemo import load_demo
from portal.models import PartnerMembership
from proxy.models import ApiProduct, Plan
from tests.conftest import subprocess_database_url
from tests.portal import factories
from tests.portal.e2e.conftest import ConsoleErrors
from tests.portal.e2e.test_pages import WIDER_THAN_SCREEN, shoot
from tests.servers import free_port, gateway_process

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


@pytest.fixture
def hana(demo_upstream: str) -> PartnerMembership:
    load_demo(demo_upstream)
    member = factories.make_member("hana@hearth.example", "hearth-voice")
    product = ApiProduct.objects.get(slug="appliance-api-v1")
    factories.subscribe(member.partner, product, Plan.objects.get(slug="demo"))
    factories.make_key(member.partner, "voice skill (production)", [product])
    factories.make_key(member.partner, "a staging key with a rather long name for a phone screen")
    return member


@pytest.fixture
def gateway(hana: PartnerMembership) -> Iterator[str]:
    port = free_port()
    proc = gateway_process(port, env={"DATABASE_URL": subprocess_database_url()}).start()
    yield f"http://127.0.0.1:{port}"
    proc.stop()


def log_in(page: Any, base: str) -> None:
    page.goto(f"{base}/portal/login/")
    page.get_by_label("Email:").fill("hana@hearth.example")
    page.get_by_label("Password:").fill(factories.PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="hearth-voice", exact=False)).to_be_visible()


def test_try_it_out_calls_the_gateway_and_the_new_key_command_works(
    gateway: str, portal_page: Any, hana: PartnerMembership
) -> None:
    page, base = portal_page, gateway
    errors = ConsoleErrors()
    errors.watch(page)
    log_in(page, base)

    # A key, and the command the page offers for it.
    page.goto(f"{base}/portal/keys/new/")
    page.get_by_label("Name:").fill("try it")
    page.get_by_role("button", name="Create the key").click()
    secret = page.locator("#secret").input_value()
    command = page.locator("#try-it").input_value()
    expect(page.locator(".try-it")).to_contain_text(base)
    shoot(page, "key-created-try-it")
    argv = shlex.split(command)
    assert argv == ["curl", "-H", f"Authorization: Bearer {secret}", f"{base}/api/v1/appliances"]
    answer = httpx.get(argv[3], headers={"Authorization": argv[2].split(": ", 1)[1]}, timeout=5)
    assert answer.status_code == 200 and "washer-1" in answer.text

    # Swagger UI: Authorize with the key, Try it out, Execute: the gateway answers from the demo API.
    page.goto(f"{base}/portal/catalogue/appliance-api-v1/")
    expect(page.locator(".gateway-url").first).to_have_text(base)
    page.locator(".swagger-ui .btn.authorize").first.click()
    bearer = page.locator(".auth-container").filter(has_text="http, Bearer")
    bearer.locator("input").fill(secret)
    bearer.locator("button.authorize").click()
    expect(bearer.locator("button.authorize")).to_have_count(0)  # now "Logout": authorized
    page.locator(".dialog-ux .btn-done").first.click()
    operation = page.locator("#operations-appliances-listAppliances")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    live = operation.locator(".live-responses-table")
    expect(live.locator("tbody .response-col_status").first).to_have_text("200", timeout=10_000)
    expect(live).to_contain_text("washer-1")
    expect(operation.locator(".request-url")).to_contain_text(f"{base}/api/v1/appliances")
    shoot(page, "product-try-it-out")

    assert errors == [], errors


def test_the_keys_table_fits_a_phone(gateway: str, portal_page: Any, hana: PartnerMembership) -> None:
    page, base = portal_page, gateway
    log_in(page, base)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/portal/keys/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.evaluate(WIDER_THAN_SCREEN)
    wrap = page.locator(".table-wrap")
    assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth"), "the table scrolls sideways"
    rows = page.locator("table.keys tbody tr")
    assert rows.count() == 2
    for i in range(rows.count()):
        for part in (rows.nth(i).locator(".status"), rows.nth(i).get_by_role("link", name="Revoke")):
            box = part.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    label = "e => getComputedStyle(e, '::before').content"
    assert rows.first.locator("td[data-label=Status]").evaluate(label) == '"Status: "'

    shoot(page, "keys-phone")
