"""The organisation: renamed and deleted by owners only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.models import PartnerMembership
from proxy.models import ApiKey, Partner, UsageHourly
from tests.portal import factories

pytestmark = pytest.mark.django_db


def test_an_owner_renames_the_organisation(alice_client: Client, alice: PartnerMembership) -> None:
    assert alice_client.post(reverse("portal:organisation"), {"name": "Acme Robotics"}).status_code == 302
    alice.partner.refresh_from_db()
    assert alice.partner.name == "Acme Robotics" and alice.partner.slug == "acme"  # the slug is the API's id


def test_a_developer_can_neither_rename_nor_delete(dave_client: Client, alice: PartnerMembership) -> None:
    assert dave_client.get(reverse("portal:organisation")).status_code == 200
    assert dave_client.post(reverse("portal:organisation"), {"name": "Mine"}).status_code == 403
    assert dave_client.get(reverse("portal:organisation-delete")).status_code == 403
    assert dave_client.post(reverse("portal:organisation-delete"), {"confirm": "Acme"}).status_code == 403
    assert Partner.objects.get(pk=alice.partner.pk).name == "Acme"


def test_deleting_needs_the_name_typed(alice_client: Client, alice: PartnerMembership) -> None:
    response = alice_client.post(reverse("portal:organisation-delete"), {"confirm": "acme"})
    assert response.status_code == 200 and "confirm" in response.context["form"].errors
    assert Partner.objects.filter(pk=alice.partner.pk).exists()


def test_deleting_removes_keys_usage_and_logins_of_this_organisation_only(
    alice_client: Client, alice: PartnerMembership, dave: PartnerMembership, bob: PartnerMembership, staff: User
) -> None:
    key = factories.make_key(alice.partner)
    factories.usage(alice.partner, key.created, key=key, requests=3)
    factories.make_key(bob.partner)
    PartnerMembership.objects.create(user=staff, partner=alice.partner, role="developer")
    response = alice_client.post(reverse("portal:organisation-delete"), {"confirm": "Acme"})
    assert response["Location"] == reverse("portal:home")
    assert not Partner.objects.filter(pk=alice.partner.pk).exists()
    assert not ApiKey.objects.filter(pk=key.pk).exists() and not UsageHourly.objects.exists()
    assert set(User.objects.values_list("username", flat=True)) == {"bob@globex.example", "staff"}
    assert ApiKey.objects.filter(partner=bob.partner).count() == 1
    assert alice_client.get(reverse("portal:keys")).status_code == 302  # signed out
