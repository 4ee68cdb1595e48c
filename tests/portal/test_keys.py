"""API keys: create (secret shown once), list, detail, rotate with a chosen grace period, revoke."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.models import PartnerMembership
from proxy import services
from proxy.models import ApiKey, ApiProduct, Plan
from tests.portal import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscribed(alice: PartnerMembership, product: ApiProduct, plan: Plan) -> ApiProduct:
    factories.subscribe(alice.partner, product, plan)
    return product


def secret_in(response: Any) -> str:
    found = re.search(r'id="secret" class="secret" type="text" value="([^"]+)"', response.content.decode())
    assert found, response.content.decode()
    return found.group(1)


def test_a_new_key_shows_its_secret_once(dave_client: Client, dave: PartnerMembership, subscribed: ApiProduct) -> None:
    response = dave_client.post(reverse("portal:key-create"), {"name": "voice skill", "products": [subscribed.pk]})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = secret_in(response)
    key = ApiKey.objects.get()
    assert services.api_key_find(secret) == key
    assert key.partner == dave.partner and key.name == "voice skill"
    assert list(key.products.all()) == [subscribed]
    assert b'data-copy-target="secret"' in response.content
    # The list shows the key without its secret, and nothing shows the secret again.
    for url in (reverse("portal:keys"), reverse("portal:key", args=[key.pk])):
        body = dave_client.get(url).content.decode()
        assert key.prefix in body and secret not in body


def test_an_unlimited_key_has_no_products(alice_client: Client, subscribed: ApiProduct) -> None:
    secret_in(alice_client.post(reverse("portal:key-create"), {"name": "all"}))
    assert ApiKey.objects.get().products.count() == 0


def test_a_key_expires_at_the_end_of_the_chosen_day(alice_client: Client, subscribed: ApiProduct) -> None:
    day = timezone.now().astimezone(UTC).date() + timedelta(days=10)
    secret_in(alice_client.post(reverse("portal:key-create"), {"name": "temp", "expires_on": day.isoformat()}))
    assert ApiKey.objects.get().expires_at == datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


def test_an_expiry_in_the_past_is_refused(alice_client: Client, subscribed: ApiProduct) -> None:
    response = alice_client.post(reverse("portal:key-create"), {"name": "old", "expires_on": date(2020, 1, 1)})
    assert response.status_code == 200 and "expires_on" in response.context["form"].errors
    assert not ApiKey.objects.exists()


def test_a_key_cannot_be_limited_to_a_product_not_subscribed(
    alice_client: Client, subscribed: ApiProduct, manual_product: ApiProduct
) -> None:
    response = alice_client.post(reverse("portal:key-create"), {"name": "x", "products": [manual_product.pk]})
    assert "products" in response.context["form"].errors
    assert not ApiKey.objects.exists()


def test_the_form_says_to_subscribe_first(alice_client: Client, db: Any) -> None:
    assert b"Subscribe to an API first" in alice_client.get(reverse("portal:key-create")).content


@pytest.mark.parametrize("status", ["pending", "suspended"])
def test_inactive_partners_cannot_create_or_rotate_keys(
    alice_client: Client, alice: PartnerMembership, subscribed: ApiProduct, status: str
) -> None:
    key = factories.make_key(alice.partner)
    alice.partner.status = status
    alice.partner.save()
    assert alice_client.get(reverse("portal:key-create")).status_code == 403
    assert alice_client.post(reverse("portal:key-create"), {"name": "x"}).status_code == 403
    assert alice_client.post(reverse("portal:key-rotate", args=[key.pk]), {"grace": "0"}).status_code == 403
    assert ApiKey.objects.count() == 1


def test_the_list_shows_prefix_name_products_dates_and_status(
    alice_client: Client, alice: PartnerMembership, subscribed: ApiProduct
) -> None:
    active = factories.make_key(alice.partner, "active one", [subscribed])
    revoked = factories.make_key(alice.partner, "revoked one")
    services.api_key_revoke(key=revoked)
    ApiKey.objects.filter(pk=active.pk).update(last_used_at=datetime(2026, 3, 1, 12, 30, tzinfo=UTC))
    body = alice_client.get(reverse("portal:keys")).content.decode()
    for text in (
        active.prefix,
        "active one",
        "Appliances",
        "2026-03-01 12:30",
        revoked.prefix,
        "All subscribed",
        "status-revoked",
        "status-active",
        "never",
    ):
        assert text in body, text


def test_rotation_keeps_the_old_key_for_the_grace_period(
    dave_client: Client, dave: PartnerMembership, subscribed: ApiProduct
) -> None:
    old = factories.make_key(dave.partner, "prod", [subscribed])
    assert dave_client.get(reverse("portal:key-rotate", args=[old.pk])).status_code == 200
    before = timezone.now()
    response = dave_client.post(reverse("portal:key-rotate", args=[old.pk]), {"grace": "86400"})
    secret = secret_in(response)
    new = services.api_key_find(secret)
    assert new is not None and new.pk != old.pk and new.name == "prod"
    assert list(new.products.all()) == [subscribed]
    old.refresh_from_db()
    assert old.expires_at is not None
    assert before + timedelta(hours=24) <= old.expires_at <= timezone.now() + timedelta(hours=24)
    assert old.status == "active"  # until the grace period ends
    assert old.prefix in response.content.decode()  # "it replaces …, which keeps working until …"


def test_rotation_without_grace_stops_the_old_key_now(
    alice_client: Client, alice: PartnerMembership, subscribed: ApiProduct
) -> None:
    old = factories.make_key(alice.partner)
    secret_in(alice_client.post(reverse("portal:key-rotate", args=[old.pk]), {"grace": "0"}))
    old.refresh_from_db()
    assert old.status == "expired"


def test_an_unknown_grace_period_is_refused(
    alice_client: Client, alice: PartnerMembership, subscribed: ApiProduct
) -> None:
    old = factories.make_key(alice.partner)
    response = alice_client.post(reverse("portal:key-rotate", args=[old.pk]), {"grace": "31536000"})
    assert response.status_code == 200 and "grace" in response.context["form"].errors
    assert ApiKey.objects.count() == 1


def test_a_revoked_key_cannot_be_rotated(
    alice_client: Client, alice: PartnerMembership, subscribed: ApiProduct
) -> None:
    key = services.api_key_revoke(key=factories.make_key(alice.partner))
    response = alice_client.post(reverse("portal:key-rotate", args=[key.pk]), {"grace": "0"})
    assert "Only an active key" in response.content.decode()
    assert ApiKey.objects.count() == 1


def test_revoking_asks_first_then_revokes(dave_client: Client, dave: PartnerMembership) -> None:
    key = factories.make_key(dave.partner)
    url = reverse("portal:key-revoke", args=[key.pk])
    assert b"cannot be undone" in dave_client.get(url).content
    key.refresh_from_db()
    assert key.revoked_at is None
    assert dave_client.post(url)["Location"] == reverse("portal:keys")
    key.refresh_from_db()
    assert key.status == "revoked"


def test_a_suspended_partner_can_still_revoke(alice_client: Client, alice: PartnerMembership) -> None:
    key = factories.make_key(alice.partner)
    alice.partner.status = "suspended"
    alice.partner.save()
    alice_client.post(reverse("portal:key-revoke", args=[key.pk]))
    key.refresh_from_db()
    assert key.status == "revoked"


def test_the_key_page_shows_its_last_24_hours(
    alice_client: Client, alice: PartnerMembership, subscribed: ApiProduct
) -> None:
    key = factories.make_key(alice.partner)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    factories.usage(alice.partner, hour, key=key, requests=42, status_2xx=40, status_4xx=2)
    body = alice_client.get(reverse("portal:key", args=[key.pk])).content.decode()
    assert ">42<" in body and f"?key={key.pk}" in body
