"""Isolation: alice (partner A) asking for anything of partner B's by id gets 404, on every portal
URL that takes an id, for every method. So does dave, A's developer."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from portal.models import Invitation, PartnerMembership
from proxy.models import ApiKey, ApiProduct, Plan, Subscription
from tests.portal import factories
from tests.portal.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def b(bob: PartnerMembership, product: ApiProduct, plan: Plan) -> dict[str, Any]:
    """Partner B's objects, one of each kind a portal URL names by id."""
    colleague = factories.make_member("carol@globex.example", bob.partner, role="developer")
    subscription = factories.subscribe(bob.partner, product, plan)
    key = factories.make_key(bob.partner, "globex prod")
    invitation = factories.invite(bob.partner, "new@globex.example")
    factories.usage(bob.partner, key.created, key=key, requests=5)
    return {"owner": bob, "member": colleague, "subscription": subscription, "key": key, "invitation": invitation}


def urls(b: dict[str, Any]) -> list[str]:
    key, member, owner = b["key"].pk, b["member"].pk, b["owner"].pk
    return [
        reverse("portal:key", args=[key]),
        reverse("portal:key-rotate", args=[key]),
        reverse("portal:key-revoke", args=[key]),
        reverse("portal:usage") + f"?key={key}",
        reverse("portal:usage-csv") + f"?key={key}",
        reverse("portal:member-role", args=[member]),
        reverse("portal:member-remove", args=[member]),
        reverse("portal:member-remove", args=[owner]),
        reverse("portal:invitation-cancel", args=[b["invitation"].pk]),
        reverse("portal:subscription-cancel", args=[b["subscription"].pk]),
    ]


@pytest.mark.parametrize("method", ["get", "post"])
def test_alice_gets_404_for_every_id_of_partner_b(
    alice_client: Client, alice: PartnerMembership, b: dict[str, Any], product: ApiProduct, method: str
) -> None:
    factories.subscribe(alice.partner, product, b["subscription"].plan)  # so A's pages have data too
    for url in urls(b):
        response = getattr(alice_client, method)(url, {"grace": "0", "role": "owner"} if method == "post" else None)
        assert response.status_code in (404, 405), url  # 405: some URLs take one method only
        if response.status_code == 405:
            assert getattr(alice_client, "post" if method == "get" else "get")(url).status_code == 404, url
    # Nothing of B's changed.
    key = ApiKey.objects.get(pk=b["key"].pk)
    assert key.status == "active" and ApiKey.objects.filter(partner=b["owner"].partner).count() == 1
    assert PartnerMembership.objects.filter(partner=b["owner"].partner).count() == 2
    assert PartnerMembership.objects.get(pk=b["member"].pk).role == "developer"
    assert Invitation.objects.filter(pk=b["invitation"].pk).exists()
    assert Subscription.objects.filter(pk=b["subscription"].pk).exists()


def test_a_developer_of_a_gets_404_too_where_the_role_is_not_checked_first(
    dave: PartnerMembership, b: dict[str, Any]
) -> None:
    client = client_for(dave)
    key = b["key"].pk
    for url in (
        reverse("portal:key", args=[key]),
        reverse("portal:key-revoke", args=[key]),
        reverse("portal:key-rotate", args=[key]),
        reverse("portal:usage") + f"?key={key}",
        reverse("portal:member-remove", args=[b["member"].pk]),
    ):
        assert client.get(url).status_code == 404, url


def test_listings_show_only_the_members_own_partner(
    alice_client: Client, alice: PartnerMembership, b: dict[str, Any]
) -> None:
    mine = factories.make_key(alice.partner, "acme prod")
    pages = {
        name: alice_client.get(reverse(name)).content.decode()
        for name in (
            "portal:home",
            "portal:keys",
            "portal:usage",
            "portal:team",
            "portal:subscriptions",
            "portal:organisation",
        )
    }
    for name, body in pages.items():
        assert b["key"].prefix not in body and "globex" not in body.lower() and "carol" not in body, name
    assert mine.prefix in pages["portal:keys"]
    csv_body = alice_client.get(reverse("portal:usage-csv"), {"range": "30d"}).content.decode()
    assert sum(int(line.split(",")[1]) for line in csv_body.splitlines()[1:]) == 0


def test_bob_cannot_see_alices_either(bob: PartnerMembership, alice: PartnerMembership) -> None:
    key = factories.make_key(alice.partner)
    client = client_for(bob)
    assert client.get(reverse("portal:key", args=[key.pk])).status_code == 404
    assert client.get(reverse("portal:member-remove", args=[alice.pk])).status_code == 404
