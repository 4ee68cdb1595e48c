"""In a real browser: sign-up answers the same for a taken address, a throttled network gets a
clear error, and new secrets (admin API token, API key) are shown once on the page, under the
CSP, and never stored in a cookie. The admin API's Swagger UI runs under the CSP too."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core import mail
from playwright.sync_api import expect

from adminapi.models import AdminToken
from portal.models import PartnerMembership
from proxy.models import ApiKey, Partner
from tests.portal import factories
from tests.portal.e2e.conftest import ConsoleErrors

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def blocked(errors: list[str]) -> list[str]:
    """CSP refusals and script errors (Django admin has no favicon: its 404 is not one)."""
    return [e for e in errors if "Content Security Policy" in e or "Refused to" in e or e.startswith("pageerror")]


def sign_up(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/portal/signup/")
    page.get_by_label("Organisation name:").fill("Org of " + email)
    page.get_by_label("Your name:").fill("Someone")
    page.get_by_label("Work email:").fill(email)
    page.get_by_label("Password:", exact=True).fill(factories.PASSWORD)
    page.get_by_label("Password again:").fill(factories.PASSWORD)
    page.get_by_role("button", name="Create account").click()


def test_sign_up_with_a_taken_address_looks_like_any_other_and_a_flood_is_refused(
    live_server: Any, portal_page: Any, alice: PartnerMembership, settings: Any
) -> None:
    settings.PORTAL_MAIL_ACTIONS_PER_IP = 2
    page, base = portal_page, live_server.url
    errors = ConsoleErrors()
    errors.watch(page)

    sign_up(page, base, "new@hearth.example")
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    new_page = page.content()
    sign_up(page, base, alice.user.email)
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    assert page.content() == new_page  # not a word of difference
    assert "already has an account" in str(mail.outbox[-1].body) and mail.outbox[-1].to == [alice.user.email]

    sign_up(page, base, "third@hearth.example")  # past PORTAL_MAIL_ACTIONS_PER_IP from this address
    expect(page.get_by_text("Too many requests from your network")).to_be_visible()
    assert not Partner.objects.filter(contact_email="third@hearth.example").exists()
    assert [e for e in errors if "(Too Many Requests)" not in e] == []  # the 429 itself is logged


def test_an_admin_token_and_an_api_key_are_shown_once_and_never_in_a_cookie(
    live_server: Any, portal_page: Any, browser: Any
) -> None:
    User.objects.create_superuser("root", "root@example.com", factories.PASSWORD)
    steve = User.objects.create_user("steve", "steve@example.com", factories.PASSWORD, is_staff=True)
    steve.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_admintoken", "view_admintoken", "add_apikey", "view_apikey"])
    )
    steve.user_permissions.add(Permission.objects.get(codename="view_partner"))
    Partner.objects.create(name="Acme", slug="acme", status="active")
    page, base = portal_page, live_server.url
    errors = ConsoleErrors()
    errors.watch(page)

    page.goto(f"{base}/admin/login/?next=/admin/adminapi/admintoken/add/")
    page.fill("#id_username", "steve")
    page.fill("#id_password", factories.PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#id_user")).to_have_count(0)  # no choice of owner for a staff user
    page.fill("#id_name", "ci-deploy")
    page.get_by_role("button", name="Save", exact=True).click()
    secret = page.locator("#new-secret").input_value()
    assert secret.startswith("gwadm_") and AdminToken.objects.get(name="ci-deploy").user == steve
    cookies = page.context.cookies()
    assert cookies and all(secret not in c["value"] for c in cookies)
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_text("ci-deploy")).to_be_visible()
    assert secret not in page.content()

    page.goto(f"{base}/admin/proxy/apikey/add/")
    page.select_option("#id_partner", label="Acme")
    page.fill("#id_name", "prod")
    page.get_by_role("button", name="Save", exact=True).click()
    key_secret = page.locator("#new-secret").input_value()
    assert ApiKey.objects.get(name="prod").prefix in key_secret
    assert all(key_secret not in c["value"] for c in page.context.cookies())
    assert blocked(errors) == []  # the CSP let the admin's pages run (a favicon 404 is fine)


def test_the_admin_api_swagger_ui_renders_under_the_csp(live_server: Any, portal_page: Any) -> None:
    User.objects.create_superuser("root", "root@example.com", factories.PASSWORD)
    page, base = portal_page, live_server.url
    errors = ConsoleErrors()
    errors.watch(page)
    page.goto(f"{base}/admin/login/?next=/api/admin/v1/docs/")
    page.fill("#id_username", "root")
    page.fill("#id_password", factories.PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#swagger-ui .opblock-summary-path").first).to_be_visible()
    assert "script-src 'self'" in page.request.get(f"{base}/api/admin/v1/docs/").headers["content-security-policy"]
    assert blocked(errors) == []
