"""Sign-in, sign-up, verification re-sends and password resets are throttled per client, where
the client is the address the gateway's trusted-proxy rule finds (apigw/clientip.py).

mallory guesses passwords from 203.0.113.66; alice works from 198.51.100.7; both reach the portal
through the load balancer 10.0.0.2 (a trusted proxy)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from portal.models import PartnerMembership
from tests.portal import factories

pytestmark = pytest.mark.django_db
LB = "10.0.0.2"


@pytest.fixture(autouse=True)
def _behind_a_load_balancer(settings: Any) -> None:
    settings.GATEWAY = {**settings.GATEWAY, "TRUSTED_PROXIES": ["10.0.0.0/8"]}
    settings.LOGIN_ATTEMPTS = 3
    settings.LOGIN_ATTEMPTS_PER_IP = 5
    settings.PORTAL_MAIL_ACTIONS_PER_IP = 3
    settings.PORTAL_MAIL_ACTIONS_PER_ADDRESS = 2


def via_lb(client_ip: str) -> dict[str, str]:
    return {"REMOTE_ADDR": LB, "HTTP_X_FORWARDED_FOR": client_ip}


def log_in(email: str, password: str, ip: str) -> Any:
    return Client().post(reverse("portal:login"), {"username": email, "password": password}, **via_lb(ip))


def test_guesses_from_one_client_do_not_lock_out_another_behind_the_same_balancer(alice: PartnerMembership) -> None:
    for _ in range(3):
        assert log_in(alice.user.email, "wrong", "203.0.113.66").status_code == 200
    assert log_in(alice.user.email, factories.PASSWORD, "203.0.113.66").status_code == 429
    # The balancer's address is the same for both; alice's own address is not locked.
    assert log_in(alice.user.email, factories.PASSWORD, "198.51.100.7").status_code == 302


def test_credential_stuffing_across_accounts_is_limited_per_client(alice: PartnerMembership) -> None:
    for i in range(5):
        assert log_in(f"user{i}@example.com", "guess", "203.0.113.66").status_code == 200
    # Past the per-IP limit every account is refused from there, even with the right password…
    assert log_in(alice.user.email, factories.PASSWORD, "203.0.113.66").status_code == 429
    # …and only from there.
    assert log_in(alice.user.email, factories.PASSWORD, "198.51.100.7").status_code == 302


def test_a_spoofed_forwarded_for_is_ignored_without_a_trusted_proxy(alice: PartnerMembership, settings: Any) -> None:
    settings.GATEWAY = {**settings.GATEWAY, "TRUSTED_PROXIES": []}
    for i in range(3):  # a guesser rotating X-Forwarded-For: still one client, its peer address
        Client().post(
            reverse("portal:login"),
            {"username": alice.user.email, "password": "wrong"},
            REMOTE_ADDR="203.0.113.66",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{i}",
        )
    # From another peer (the balancer, untrusted now, is its own client): not locked.
    assert log_in(alice.user.email, factories.PASSWORD, "203.0.113.66").status_code == 302
    response = Client().post(
        reverse("portal:login"),
        {"username": alice.user.email, "password": factories.PASSWORD},
        REMOTE_ADDR="203.0.113.66",
        HTTP_X_FORWARDED_FOR="192.0.2.200",
    )
    assert response.status_code == 429


def signup_form(email: str) -> dict[str, str]:
    return {
        "organisation": "Org " + email,
        "contact_name": "Someone",
        "email": email,
        "password1": factories.PASSWORD,
        "password2": factories.PASSWORD,
    }


def test_sign_ups_are_limited_per_client_with_a_clear_error() -> None:
    for i in range(3):
        response = Client().post(reverse("portal:signup"), signup_form(f"s{i}@example.com"), **via_lb("203.0.113.66"))
        assert response.status_code == 302
    refused = Client().post(reverse("portal:signup"), signup_form("s9@example.com"), **via_lb("203.0.113.66"))
    assert refused.status_code == 429
    assert "Too many requests from your network" in refused.content.decode()
    other = Client().post(reverse("portal:signup"), signup_form("s9@example.com"), **via_lb("198.51.100.7"))
    assert other.status_code == 302


def test_an_address_gets_a_few_mails_then_none_and_the_page_answers_the_same() -> None:
    email = "target@example.com"
    for i in range(4):
        response = Client().post(reverse("portal:signup"), signup_form(email), **via_lb(f"198.51.100.{i}"))
        assert response.status_code == 302
    assert len(mail.outbox) == 2 and {m.to[0] for m in mail.outbox} == {email}


def test_resend_and_password_reset_are_limited_per_client_and_per_address(alice: PartnerMembership) -> None:
    for path in ("portal:verify-resend", "portal:password-reset"):
        for _ in range(3):
            assert Client().post(reverse(path), {"email": "x@example.com"}, **via_lb("203.0.113.66")).status_code == 302
        assert Client().post(reverse(path), {"email": "x@example.com"}, **via_lb("203.0.113.66")).status_code == 429
    mail.outbox.clear()
    for i in range(4):
        response = Client().post(
            reverse("portal:password-reset"), {"email": alice.user.email}, **via_lb(f"192.0.2.{i}")
        )
        assert response.status_code == 302
    assert len(mail.outbox) == 2
