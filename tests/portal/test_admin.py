"""Staff actions in Django admin: approving partners and subscription requests emails the partner."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.core import mail
from django.test import Client
from django.urls import reverse

from portal.admin import PartnerAdmin, SubscriptionAdmin
from portal.models import PartnerMembership
from proxy.models import ApiProduct, Partner, Plan, Subscription
from tests.portal import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def run_action(client: Client, model: str, action: str, ids: list[int]) -> Any:
    return client.post(
        reverse(f"admin:proxy_{model}_changelist"),
        {"action": action, "_selected_action": [str(i) for i in ids]},
        follow=True,
    )


def test_the_portals_admins_replace_proxys_and_keep_its_actions() -> None:
    assert isinstance(admin.site._registry[Partner], PartnerAdmin)
    assert isinstance(admin.site._registry[Subscription], SubscriptionAdmin)
    assert {"activate", "suspend", "approve"} <= set(PartnerAdmin.actions)  # type: ignore[arg-type]


def test_approving_activates_pending_partners_and_emails_their_owners(staff_client: Client) -> None:
    pending = factories.make_member("hana@hearth.example", "hearth", status="pending")
    factories.make_member("ken@hearth.example", pending.partner, role="developer")
    active = factories.make_member("alice@acme.example", "acme")
    response = run_action(staff_client, "partner", "approve", [pending.partner.pk, active.partner.pk])
    assert response.status_code == 200
    assert "1 partner(s) approved and emailed. 1 were not pending" in response.content.decode()
    pending.partner.refresh_from_db()
    assert pending.partner.status == "active"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["hana@hearth.example"]  # the owners, not developers
    assert "Hearth is approved" in mail.outbox[0].subject and "/portal/" in mail.outbox[0].body


def test_the_partner_page_shows_its_members(staff_client: Client, alice: PartnerMembership) -> None:
    body = staff_client.get(reverse("admin:proxy_partner_change", args=[alice.partner.pk])).content.decode()
    assert "portal memberships" in body.lower()


@pytest.mark.parametrize(
    ("action", "status", "word"), [("approve", "active", "active"), ("reject", "rejected", "rejected")]
)
def test_deciding_a_subscription_request_emails_the_owners(
    staff_client: Client,
    alice: PartnerMembership,
    manual_product: ApiProduct,
    plan: Plan,
    action: str,
    status: str,
    word: str,
) -> None:
    subscription = factories.subscribe(alice.partner, manual_product, plan, status="pending")
    run_action(staff_client, "subscription", action, [subscription.pk])
    subscription.refresh_from_db()
    assert subscription.status == status
    assert mail.outbox[0].to == ["alice@acme.example"] and word in mail.outbox[0].subject
    # Deciding again changes nothing and mails nobody.
    run_action(staff_client, "subscription", action, [subscription.pk])
    assert len(mail.outbox) == 1


def test_memberships_and_invitations_have_admin_pages(staff_client: Client, alice: PartnerMembership) -> None:
    assert staff_client.get(reverse("admin:portal_partnermembership_changelist")).status_code == 200
    assert staff_client.get(reverse("admin:portal_invitation_changelist")).status_code == 200
