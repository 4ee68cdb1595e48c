"""The team: owners invite by email, set roles and remove members; developers cannot remove the
owner or delete the organisation, but may leave."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse

from portal import tokens
from portal.models import Invitation, PartnerMembership
from tests.portal import factories

pytestmark = pytest.mark.django_db


def invite(client: Client, email: str = "erin@acme.example", role: str = "developer") -> Any:
    return client.post(reverse("portal:invite"), {"email": email, "role": role})


def invitation_link() -> str:
    found = re.search(r"http://\S+", str(mail.outbox[-1].body))
    assert found
    return found.group(0)


def test_the_team_page_lists_members_and_invitations(alice_client: Client, dave: PartnerMembership) -> None:
    invite(alice_client)
    body = alice_client.get(reverse("portal:team")).content.decode()
    assert "alice@acme.example" in body and "dave@acme.example" in body and "erin@acme.example" in body
    assert "Invite a colleague" in body


def test_an_owner_invites_and_the_colleague_joins_by_the_link(alice_client: Client, alice: PartnerMembership) -> None:
    response = invite(alice_client, "Erin@Acme.example", "developer")
    assert response["Location"] == reverse("portal:team")
    invitation = Invitation.objects.get()
    assert invitation.email == "erin@acme.example" and invitation.invited_by == alice.user
    assert mail.outbox[0].to == ["erin@acme.example"] and "Acme" in mail.outbox[0].subject

    visitor = Client()
    link = invitation_link()
    page = visitor.get(link)
    assert page.status_code == 200 and b"erin@acme.example" in page.content
    response = visitor.post(
        link, {"contact_name": "Erin", "password1": factories.PASSWORD, "password2": factories.PASSWORD}
    )
    assert response["Location"] == reverse("portal:home")
    erin = PartnerMembership.objects.get(user__email="erin@acme.example")
    assert erin.partner == alice.partner and erin.role == "developer" and erin.email_verified_at is not None
    assert not Invitation.objects.exists()
    assert visitor.get(reverse("portal:keys")).status_code == 200  # signed in
    assert Client().get(link).status_code == 400  # used: the link is void


def test_an_invitation_link_checks_its_password(alice_client: Client) -> None:
    invite(alice_client)
    response = Client().post(
        invitation_link(), {"contact_name": "Erin", "password1": "password", "password2": "password"}
    )
    assert response.status_code == 200 and "password1" in response.context["form"].errors
    assert not User.objects.filter(email="erin@acme.example").exists()


def test_a_cancelled_or_expired_invitation_is_void(alice_client: Client, settings: Any) -> None:
    invite(alice_client)
    link = invitation_link()
    invitation = Invitation.objects.get()
    settings.PORTAL_INVITATION_MAX_AGE = -1
    assert Client().get(link).status_code == 400
    settings.PORTAL_INVITATION_MAX_AGE = 3600
    assert alice_client.post(reverse("portal:invitation-cancel", args=[invitation.pk]))["Location"] == reverse(
        "portal:team"
    )
    assert Client().get(link).status_code == 400
    forged = tokens.verification_token(invitation.pk, invitation.email)  # a token for another purpose
    assert Client().get(reverse("portal:invitation-accept", args=[forged])).status_code == 400


def test_an_invitation_cannot_be_accepted_while_signed_in(alice_client: Client, bob: PartnerMembership) -> None:
    invite(alice_client)
    bob_client = Client()
    bob_client.force_login(bob.user)
    assert bob_client.get(invitation_link()).status_code == 400
    assert PartnerMembership.objects.filter(user=bob.user, partner=bob.partner).exists()


def test_members_and_existing_logins_cannot_be_invited(
    alice_client: Client, dave: PartnerMembership, bob: PartnerMembership
) -> None:
    for email in ("dave@acme.example", "bob@globex.example"):
        response = invite(alice_client, email)
        assert response.status_code == 400 and "email" in response.context["form"].errors
    assert not Invitation.objects.exists() and mail.outbox == []


def test_inviting_again_sends_a_new_link(alice_client: Client) -> None:
    invite(alice_client)
    invite(alice_client, role="owner")
    assert Invitation.objects.get().role == "owner" and len(mail.outbox) == 2


def test_developers_cannot_manage_the_team(
    dave_client: Client, alice: PartnerMembership, dave: PartnerMembership
) -> None:
    invitation = factories.invite(alice.partner, "x@acme.example")
    assert invite(dave_client).status_code == 403
    assert dave_client.post(reverse("portal:invitation-cancel", args=[invitation.pk])).status_code == 403
    assert dave_client.post(reverse("portal:member-role", args=[dave.pk]), {"role": "owner"}).status_code == 403
    # Above all, a developer cannot remove the owner.
    assert dave_client.get(reverse("portal:member-remove", args=[alice.pk])).status_code == 403
    assert dave_client.post(reverse("portal:member-remove", args=[alice.pk])).status_code == 403
    dave.refresh_from_db()
    assert dave.role == "developer"
    assert PartnerMembership.objects.filter(pk=alice.pk).exists()
    body = dave_client.get(reverse("portal:team")).content.decode()
    assert "Invite a colleague" not in body and "Remove" not in body


def test_a_developer_may_leave(dave_client: Client, dave: PartnerMembership) -> None:
    url = reverse("portal:member-remove", args=[dave.pk])
    assert b"Leave" in dave_client.get(url).content
    assert dave_client.post(url)["Location"] == reverse("portal:home")
    assert not User.objects.filter(email="dave@acme.example").exists()


def test_an_owner_removes_a_member_and_their_login(alice_client: Client, dave: PartnerMembership) -> None:
    alice_client.post(reverse("portal:member-remove", args=[dave.pk]))
    assert not PartnerMembership.objects.filter(pk=dave.pk).exists()
    assert not User.objects.filter(email="dave@acme.example").exists()


def test_the_last_owner_can_neither_leave_nor_step_down(
    alice_client: Client, alice: PartnerMembership, dave: PartnerMembership
) -> None:
    alice_client.post(reverse("portal:member-remove", args=[alice.pk]))
    alice_client.post(reverse("portal:member-role", args=[alice.pk]), {"role": "developer"})
    alice.refresh_from_db()
    assert alice.role == "owner"
    # With a second owner she can.
    alice_client.post(reverse("portal:member-role", args=[dave.pk]), {"role": "owner"})
    alice_client.post(reverse("portal:member-role", args=[alice.pk]), {"role": "developer"})
    alice.refresh_from_db()
    dave.refresh_from_db()
    assert (alice.role, dave.role) == ("developer", "owner")


def test_a_login_without_organisation_is_told_so(client: Client, db: Any) -> None:
    lonely = User.objects.create_user("lonely", "lonely@example.com", factories.PASSWORD)
    client.force_login(lonely)
    response = client.get(reverse("portal:keys"))
    assert response.status_code == 403 and b"does not belong to an organisation" in response.content
