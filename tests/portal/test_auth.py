"""Log in and out, login throttling, password reset and change."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from portal.models import PartnerMembership
from tests.portal import factories

pytestmark = pytest.mark.django_db


def log_in(client: Client, email: str, password: str, ip: str = "192.0.2.1") -> Any:
    return client.post(reverse("portal:login"), {"username": email, "password": password}, REMOTE_ADDR=ip)


def test_a_member_logs_in_with_the_email_in_any_case_and_logs_out(client: Client, alice: PartnerMembership) -> None:
    response = log_in(client, "Alice@ACME.example", factories.PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("portal:home")
    assert b"Acme" in client.get(reverse("portal:home")).content
    assert client.get(reverse("portal:logout")).status_code == 405  # only POST logs out (CSRF-protected)
    response = client.post(reverse("portal:logout"))
    assert response.status_code == 302 and response["Location"] == reverse("portal:home")
    assert client.get(reverse("portal:keys")).status_code == 302


def test_login_goes_on_to_the_page_asked_for(client: Client, alice: PartnerMembership) -> None:
    response = client.get(reverse("portal:keys"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('portal:login')}?next=/portal/keys/"
    response = client.post(response["Location"], {"username": alice.user.email, "password": factories.PASSWORD})
    assert response["Location"] == "/portal/keys/"


def test_failed_logins_are_throttled_per_email_and_ip(client: Client, alice: PartnerMembership, settings: Any) -> None:
    settings.LOGIN_ATTEMPTS = 3
    for _ in range(3):
        assert log_in(client, alice.user.email, "wrong").status_code == 200
    # Locked: even the right password is refused, with 429, for this email from this address…
    response = log_in(client, alice.user.email, factories.PASSWORD)
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session
    # …but not from another address, so a guesser elsewhere cannot lock alice out.
    assert log_in(Client(), alice.user.email, factories.PASSWORD, ip="198.51.100.7").status_code == 302


def test_a_successful_login_clears_the_failures(client: Client, alice: PartnerMembership, settings: Any) -> None:
    settings.LOGIN_ATTEMPTS = 3
    log_in(client, alice.user.email, "wrong")
    log_in(client, alice.user.email, "wrong")
    assert log_in(client, alice.user.email, factories.PASSWORD).status_code == 302
    client.post(reverse("portal:logout"))
    log_in(client, alice.user.email, "wrong")
    log_in(client, alice.user.email, "wrong")
    assert log_in(client, alice.user.email, factories.PASSWORD).status_code == 302


def test_a_suspended_partners_member_can_still_log_in(client: Client, alice: PartnerMembership) -> None:
    alice.partner.status = "suspended"
    alice.partner.save()
    assert log_in(client, alice.user.email, factories.PASSWORD).status_code == 302
    response = client.get(reverse("portal:home"))
    assert b"is suspended" in response.content and b"refuses its API keys" in response.content


def test_password_reset_by_emailed_link(client: Client, alice: PartnerMembership) -> None:
    response = client.post(reverse("portal:password-reset"), {"email": alice.user.email})
    assert response["Location"] == reverse("portal:password-reset-done")
    assert len(mail.outbox) == 1 and mail.outbox[0].subject == "Reset your developer portal password"
    link = re.search(r"http://\S+", str(mail.outbox[0].body))
    assert link
    response = client.get(link.group(0))  # redirects to the same URL with the token in the session
    assert response.status_code == 302
    form_url = response["Location"]
    response = client.post(
        form_url, {"new_password1": "a-brand-new-passphrase", "new_password2": "a-brand-new-passphrase"}
    )
    assert response["Location"] == reverse("portal:password-reset-complete")
    assert log_in(Client(), alice.user.email, "a-brand-new-passphrase").status_code == 302


def test_password_reset_says_the_same_for_unknown_addresses(client: Client, db: Any) -> None:
    response = client.post(reverse("portal:password-reset"), {"email": "nobody@example.com"})
    assert response["Location"] == reverse("portal:password-reset-done")
    assert mail.outbox == []


def test_password_change(alice_client: Client, alice: PartnerMembership) -> None:
    response = alice_client.post(
        reverse("portal:password-change"),
        {
            "old_password": factories.PASSWORD,
            "new_password1": "another-long-passphrase",
            "new_password2": "another-long-passphrase",
        },
    )
    assert response["Location"] == reverse("portal:home")
    alice.user.refresh_from_db()
    assert alice.user.check_password("another-long-passphrase")
