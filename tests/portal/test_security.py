"""Security: a Content-Security-Policy on every portal page, CSRF on every form, logins required,
secure cookies in production; and every page renders for the people allowed to see it."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from portal.models import PartnerMembership
from proxy.models import ApiProduct, Plan
from tests.portal import factories
from tests.portal.conftest import client_for
from tests.servers import ROOT

pytestmark = pytest.mark.django_db

PUBLIC_PAGES = [
    "portal:home",
    "portal:catalogue",
    "portal:signup",
    "portal:signup-done",
    "portal:login",
    "portal:verify-resend",
    "portal:password-reset",
    "portal:password-reset-done",
    "portal:password-reset-complete",
]
MEMBER_PAGES = [
    "portal:home",
    "portal:subscriptions",
    "portal:keys",
    "portal:key-create",
    "portal:usage",
    "portal:usage-csv",
    "portal:team",
    "portal:organisation",
    "portal:organisation-delete",
    "portal:password-change",
]


@pytest.fixture
def a(alice: PartnerMembership, dave: PartnerMembership, product: ApiProduct, plan: Plan) -> dict[str, Any]:
    subscription = factories.subscribe(alice.partner, product, plan)
    key = factories.make_key(alice.partner)
    invitation = factories.invite(alice.partner, "new@acme.example")
    return {
        "key": key,
        "subscription": subscription,
        "invitation": invitation,
        "dave": dave,
        "product": product,
        "plan": plan,
    }


def id_pages(a: dict[str, Any]) -> list[str]:
    return [
        reverse("portal:key", args=[a["key"].pk]),
        reverse("portal:key-rotate", args=[a["key"].pk]),
        reverse("portal:key-revoke", args=[a["key"].pk]),
        reverse("portal:subscription-cancel", args=[a["subscription"].pk]),
        reverse("portal:member-remove", args=[a["dave"].pk]),
        reverse("portal:product", args=[a["product"].slug]),
        reverse("portal:product-openapi", args=[a["product"].slug]),
    ]


def test_every_page_renders_for_a_member_with_a_csp(alice_client: Client, a: dict[str, Any]) -> None:
    for url in [reverse(name) for name in MEMBER_PAGES] + id_pages(a):
        response = alice_client.get(url)
        assert response.status_code == 200, url
        assert "script-src 'self'" in response["Content-Security-Policy"], url
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_public_pages_render_for_visitors_with_a_csp(client: Client, a: dict[str, Any]) -> None:
    for url in [reverse(name) for name in PUBLIC_PAGES] + id_pages(a)[-2:]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Security-Policy"].startswith("default-src 'self'")
        assert response["X-Frame-Options"] == "DENY"


def test_error_pages_of_the_portal_carry_the_csp_but_the_admin_does_not(client: Client) -> None:
    assert "Content-Security-Policy" in client.get("/portal/no-such-page/")
    assert "Content-Security-Policy" not in client.get("/admin/login/")


def test_the_csp_can_be_configured(client: Client, settings: Any) -> None:
    settings.PORTAL_CONTENT_SECURITY_POLICY = "default-src 'none'"  # read when the client's handler starts
    assert client.get(reverse("portal:home"))["Content-Security-Policy"] == "default-src 'none'"


def test_member_pages_need_a_login(client: Client, a: dict[str, Any]) -> None:
    for url in [reverse(name) for name in MEMBER_PAGES[1:]] + id_pages(a)[:-2]:  # the home page is public
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/portal/login/?next="), url


def test_every_form_needs_its_csrf_token(alice: PartnerMembership, a: dict[str, Any]) -> None:
    client = client_for(alice, enforce_csrf_checks=True)
    posts = {
        reverse("portal:signup"): {},
        reverse("portal:login"): {},
        reverse("portal:logout"): {},
        reverse("portal:verify-resend"): {},
        reverse("portal:password-reset"): {},
        reverse("portal:password-change"): {},
        reverse("portal:subscribe", args=[a["product"].slug]): {"plan": a["plan"].pk},
        reverse("portal:subscription-cancel", args=[a["subscription"].pk]): {},
        reverse("portal:key-create"): {"name": "x"},
        reverse("portal:key-rotate", args=[a["key"].pk]): {"grace": "0"},
        reverse("portal:key-revoke", args=[a["key"].pk]): {},
        reverse("portal:invite"): {"email": "x@acme.example", "role": "developer"},
        reverse("portal:invitation-cancel", args=[a["invitation"].pk]): {},
        reverse("portal:member-role", args=[a["dave"].pk]): {"role": "owner"},
        reverse("portal:member-remove", args=[a["dave"].pk]): {},
        reverse("portal:organisation"): {"name": "Evil"},
        reverse("portal:organisation-delete"): {"confirm": "Acme"},
        reverse("portal:invitation-accept", args=["token"]): {},
    }
    for url, data in posts.items():
        assert client.post(url, data).status_code == 403, url
    a["key"].refresh_from_db()
    assert a["key"].status == "active"


def test_forms_carry_a_csrf_token(alice_client: Client, a: dict[str, Any]) -> None:
    for url in (
        reverse("portal:key-create"),
        reverse("portal:team"),
        reverse("portal:key-revoke", args=[a["key"].pk]),
        reverse("portal:product", args=[a["product"].slug]),
    ):
        assert b'name="csrfmiddlewaretoken"' in alice_client.get(url).content, url


def setting_in_production(name: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE"}}
    env.update(DEBUG="false", SECRET_KEY="x" * 60, DJANGO_SETTINGS_MODULE="apigw.settings")
    code = f"import django; django.setup(); from django.conf import settings; print(settings.{name})"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()


def test_session_and_csrf_cookies_are_secure_in_production() -> None:
    assert setting_in_production("SESSION_COOKIE_SECURE") == "True"
    assert setting_in_production("CSRF_COOKIE_SECURE") == "True"
    assert setting_in_production("EMAIL_BACKEND") == "django.core.mail.backends.console.EmailBackend"
