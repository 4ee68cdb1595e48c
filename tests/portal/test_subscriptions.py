"""Requesting access to a product under a plan: granted at once or approved by staff."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from portal.models import PartnerMembership
from proxy.models import ApiProduct, Plan, Subscription
from tests.portal import factories

pytestmark = pytest.mark.django_db


def subscribe(client: Client, product: ApiProduct, plan: Plan) -> Any:
    return client.post(reverse("portal:subscribe", args=[product.slug]), {"plan": plan.pk})


def test_an_auto_approved_product_is_granted_at_once(
    dave_client: Client, dave: PartnerMembership, product: ApiProduct, plan: Plan
) -> None:
    response = subscribe(dave_client, product, plan)  # developers may subscribe too
    assert response["Location"] == reverse("portal:subscriptions")
    subscription = Subscription.objects.get()
    assert (subscription.partner, subscription.product, subscription.plan, subscription.status) == (
        dave.partner,
        product,
        plan,
        "active",
    )
    assert mail.outbox == []
    body = dave_client.get(reverse("portal:subscriptions")).content.decode()
    assert "Appliances" in body and "status-active" in body


def test_a_manual_product_waits_for_staff_who_are_emailed(
    alice_client: Client, manual_product: ApiProduct, plan: Plan, staff: Any
) -> None:
    subscribe(alice_client, manual_product, plan)
    assert Subscription.objects.get().status == "pending"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["staff@platform.example"]
    assert "Acme" in mail.outbox[0].subject and "/admin/proxy/subscription/" in mail.outbox[0].body


def test_changing_plan_of_an_auto_product(
    alice_client: Client, alice: PartnerMembership, product: ApiProduct, plan: Plan
) -> None:
    factories.subscribe(alice.partner, product, plan)
    bigger = factories.make_plan("scale", quota_day=None)
    subscribe(alice_client, product, bigger)
    assert Subscription.objects.get().plan == bigger


def test_changing_plan_of_an_approved_manual_product_needs_staff(
    alice_client: Client, alice: PartnerMembership, manual_product: ApiProduct, plan: Plan
) -> None:
    factories.subscribe(alice.partner, manual_product, plan)
    bigger = factories.make_plan("scale")
    response = subscribe(alice_client, manual_product, bigger)
    assert response.status_code == 302
    messages = [str(m) for m in alice_client.get(response["Location"]).context["messages"]]
    assert any("approved by staff" in m for m in messages)
    assert Subscription.objects.get().plan == plan


def test_a_rejected_request_can_be_made_again(
    alice_client: Client, alice: PartnerMembership, manual_product: ApiProduct, plan: Plan
) -> None:
    factories.subscribe(alice.partner, manual_product, plan, status="rejected")
    subscribe(alice_client, manual_product, plan)
    assert Subscription.objects.get().status == "pending"


def test_private_plans_cannot_be_chosen(alice_client: Client, product: ApiProduct) -> None:
    private = factories.make_plan("private", public=False)
    subscribe(alice_client, product, private)
    assert not Subscription.objects.exists()


def test_pending_and_suspended_partners_cannot_subscribe(
    alice_client: Client, alice: PartnerMembership, product: ApiProduct, plan: Plan
) -> None:
    for status in ("pending", "suspended"):
        alice.partner.status = status
        alice.partner.save()
        assert subscribe(alice_client, product, plan).status_code == 403
    assert not Subscription.objects.exists()


def test_only_owners_cancel_a_subscription(
    alice_client: Client, dave_client: Client, alice: PartnerMembership, product: ApiProduct, plan: Plan
) -> None:
    subscription = factories.subscribe(alice.partner, product, plan)
    url = reverse("portal:subscription-cancel", args=[subscription.pk])
    assert dave_client.get(url).status_code == 403
    assert dave_client.post(url).status_code == 403
    assert alice_client.get(url).status_code == 200
    assert alice_client.post(url)["Location"] == reverse("portal:subscriptions")
    assert not Subscription.objects.exists()
