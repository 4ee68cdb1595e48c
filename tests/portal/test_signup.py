"""Sign-up → email verification by signed link → pending until staff approve (or auto-approval)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail, signing
from django.test import Client
from django.urls import reverse

from portal import tokens
from portal.models import PartnerMembership
from proxy.models import Partner
from tests.portal import factories

pytestmark = pytest.mark.django_db

FORM = {
    "organisation": "Hearth Voice",
    "contact_name": "Hana Ito",
    "email": "Hana@Hearth.example",
    "password1": factories.PASSWORD,
    "password2": factories.PASSWORD,
}


def sign_up(client: Client, **changes: str) -> Any:
    return client.post(reverse("portal:signup"), {**FORM, **changes})


def link_in(message: mail.EmailMessage) -> str:
    found = re.search(r"https?://\S+", str(message.body))
    assert found, message.body
    return found.group(0)


def test_sign_up_creates_a_pending_partner_and_an_inactive_owner(client: Client) -> None:
    response = sign_up(client)
    assert response.status_code == 302 and response["Location"] == reverse("portal:signup-done")
    member = PartnerMembership.objects.select_related("user", "partner").get()
    assert member.role == "owner" and member.email_verified_at is None
    assert member.user.username == member.user.email == "hana@hearth.example"
    assert member.user.first_name == "Hana Ito"
    assert member.user.is_active is False
    assert member.partner.name == "Hearth Voice" and member.partner.slug == "hearth-voice"
    assert member.partner.status == "pending"
    assert member.partner.contact_email == "hana@hearth.example"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["hana@hearth.example"]
    assert "/portal/verify/" in link_in(mail.outbox[0])


def test_the_login_does_not_work_before_the_email_is_verified(client: Client) -> None:
    sign_up(client)
    response = client.post(reverse("portal:login"), {"username": FORM["email"], "password": FORM["password1"]})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"password1": "password", "password2": "password"}, "password1", "too common"),
        ({"password1": "short", "password2": "short"}, "password1", "too short"),
        ({"password1": "84736291047", "password2": "84736291047"}, "password1", "entirely numeric"),
        ({"password1": "hana@hearth.example", "password2": "hana@hearth.example"}, "password1", "too similar"),
        ({"password2": "something-else-entirely"}, "password2", "differ"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"organisation": ""}, "organisation", "required"),
    ],
)
def test_sign_up_validates_with_djangos_password_validators(
    client: Client, changes: dict[str, str], field: str, message: str
) -> None:
    response = sign_up(client, **changes)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not Partner.objects.exists() and not User.objects.exists()


def test_an_email_address_signs_up_once_and_the_page_does_not_tell(client: Client, alice: PartnerMembership) -> None:
    new = sign_up(Client(), email="new@hearth.example")
    mail.outbox.clear()
    existing = sign_up(client, email="ALICE@acme.example")
    # The same answer as for a new address: the page must not tell who is a customer…
    assert (existing.status_code, existing["Location"]) == (new.status_code, new["Location"])
    assert Partner.objects.filter(memberships__user__email="alice@acme.example").count() == 1
    # …the mail to the address's owner says what happened.
    [message] = mail.outbox
    assert message.to == ["alice@acme.example"] and "already has an account" in str(message.body)
    assert "/portal/password/reset/" in str(message.body)


def test_a_sign_up_again_with_an_unverified_address_mails_a_new_link(client: Client) -> None:
    sign_up(client)
    sign_up(Client())
    assert len(mail.outbox) == 2 and "/portal/verify/" in link_in(mail.outbox[1])
    assert Partner.objects.count() == 1


def test_the_link_activates_the_login_and_emails_staff(client: Client, staff: Any) -> None:
    sign_up(client)
    link = link_in(mail.outbox[0])
    response = client.get(link)
    assert response.status_code == 200
    assert b"waiting for approval" in response.content
    member = PartnerMembership.objects.select_related("user", "partner").get()
    assert member.user.is_active and member.email_verified_at is not None
    assert member.partner.status == "pending"
    staff_mail = mail.outbox[1]
    assert staff_mail.to == ["staff@platform.example"]
    assert "Hearth Voice" in staff_mail.subject
    assert f"/admin/proxy/partner/{member.partner.pk}/change/" in staff_mail.body
    # Following the link again changes nothing and mails nobody.
    assert client.get(link).status_code == 200
    assert len(mail.outbox) == 2
    assert (
        client.post(reverse("portal:login"), {"username": FORM["email"], "password": FORM["password1"]}).status_code
        == 302
    )


def test_staff_addresses_can_be_configured(client: Client, staff: Any, settings: Any) -> None:
    settings.PORTAL_STAFF_EMAILS = ["partners@platform.example"]
    sign_up(client)
    client.get(link_in(mail.outbox[0]))
    assert mail.outbox[1].to == ["partners@platform.example"]


def test_auto_approve_activates_the_partner_on_verification(client: Client, staff: Any, settings: Any) -> None:
    settings.PORTAL_AUTO_APPROVE = True
    sign_up(client)
    response = client.get(link_in(mail.outbox[0]))
    assert Partner.objects.get().status == "active"
    assert b"is active" in response.content
    assert len(mail.outbox) == 1  # no approval needed, so staff are not asked


def test_a_forged_or_expired_link_is_refused(client: Client, settings: Any) -> None:
    sign_up(client)
    user = User.objects.get()
    forged = signing.dumps({"id": user.pk, "email": user.email}, salt="another-purpose")
    assert client.get(reverse("portal:verify", args=[forged])).status_code == 400
    assert client.get(reverse("portal:verify", args=["garbage"])).status_code == 400
    settings.PORTAL_VERIFY_MAX_AGE = -1
    assert (
        client.get(reverse("portal:verify", args=[tokens.verification_token(user.pk, user.email)])).status_code == 400
    )
    user.refresh_from_db()
    assert user.is_active is False


def test_a_link_for_another_address_is_refused(client: Client) -> None:
    sign_up(client)
    user = User.objects.get()
    token = tokens.verification_token(user.pk, "someone-else@example.com")
    assert client.get(reverse("portal:verify", args=[token])).status_code == 400


def test_the_link_can_be_sent_again_without_telling_who_has_an_account(client: Client) -> None:
    sign_up(client)
    for email in ("hana@hearth.example", "nobody@example.com"):
        response = client.post(reverse("portal:verify-resend"), {"email": email})
        assert response.status_code == 302 and response["Location"] == reverse("portal:login")
    assert len(mail.outbox) == 2
    assert mail.outbox[1].to == ["hana@hearth.example"]
    assert client.get(link_in(mail.outbox[1])).status_code == 200
    assert User.objects.get().is_active


def test_a_signed_in_member_is_sent_home_from_sign_up(alice_client: Client) -> None:
    assert alice_client.get(reverse("portal:signup"))["Location"] == reverse("portal:home")
