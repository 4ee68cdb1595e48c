"""Partners find what to call (issue 19 item 4): the gateway's address, the product's API reference
with the gateway as its server, a real "Try it" command for a new key, and pages that promise
only what will happen."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from portal.models import PartnerMembership
from proxy.models import ApiKey, ApiProduct, Plan, Route, Upstream
from tests.portal import factories
from tests.portal.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscribed(alice: PartnerMembership, product: ApiProduct, plan: Plan) -> ApiProduct:
    factories.subscribe(alice.partner, product, plan)
    return product


def test_the_openapi_document_names_the_gateway_as_its_server(client: Client, product: ApiProduct) -> None:
    url = reverse("portal:product-openapi", args=[product.slug])
    assert client.get(url).json()["servers"] == [{"url": "http://testserver", "description": "API gateway"}]
    with override_settings(GATEWAY_PUBLIC_URL="https://api.example.com"):
        document = client.get(url).json()
    assert document["servers"][0]["url"] == "https://api.example.com"
    assert document["paths"] == product.openapi["paths"]


def test_the_product_page_shows_the_gateway_address_and_a_real_path(client: Client, product: ApiProduct) -> None:
    with override_settings(GATEWAY_PUBLIC_URL="https://api.example.com"):
        page = client.get(reverse("portal:product", args=[product.slug])).content.decode()
    assert "GET https://api.example.com/api/v1/appliances" in page


def test_a_configured_gateway_on_another_origin_may_be_called_from_the_portal(client: Client) -> None:
    with override_settings(GATEWAY_PUBLIC_URL="https://api.example.com/base", MIDDLEWARE=_middleware()):
        policy = client.get(reverse("portal:home"))["Content-Security-Policy"]
    assert "connect-src 'self' https://api.example.com;" in policy
    assert "script-src 'self';" in policy


def _middleware() -> list[str]:
    from django.conf import settings

    return list(settings.MIDDLEWARE)  # rebuilt, so the policy is computed under the override


def test_the_new_key_page_has_a_real_command_to_try(alice_client: Client, subscribed: ApiProduct) -> None:
    with override_settings(GATEWAY_PUBLIC_URL="https://api.example.com"):
        page = alice_client.post(reverse("portal:key-create"), {"name": "bridge"}).content.decode()
    secret = re.search(r'id="secret" class="secret" type="text" value="([^"]+)"', page)
    command = re.search(r'<textarea id="try-it"[^>]*>([^<]+)</textarea>', page)
    assert secret and command, page
    argv = shlex.split(command.group(1).replace("&#x27;", "'"))
    assert argv == [
        "curl",
        "-H",
        f"Authorization: Bearer {secret.group(1)}",
        "https://api.example.com/api/v1/appliances",
    ]
    assert "&lt;gateway&gt;" not in page


def test_without_a_document_the_command_uses_a_route_of_the_product(alice: PartnerMembership, plan: Plan) -> None:
    product = factories.make_product("energy", openapi=None)
    upstream = Upstream.objects.create(name="energy")
    Route.objects.create(name="energy", upstream=upstream, path="/energy/v2", product=product)
    factories.subscribe(alice.partner, product, plan)
    page = client_for(alice).post(reverse("portal:key-create"), {"name": "k"}).content.decode()
    assert "http://testserver/energy/v2" in page


def test_a_rotated_key_is_renamed_so_it_is_told_apart_from_its_successor(
    alice_client: Client, alice: PartnerMembership, subscribed: ApiProduct
) -> None:
    old = factories.make_key(alice.partner, "voice skill")
    alice_client.post(reverse("portal:key-rotate", args=[old.pk]), {"grace": "86400"})
    old.refresh_from_db()
    new = ApiKey.objects.exclude(pk=old.pk).get()
    assert new.name == "voice skill"
    assert re.fullmatch(r"voice skill \(rotated \d{4}-\d\d-\d\d \d\d:\d\d UTC\)", old.name), old.name
    listing = alice_client.get(reverse("portal:keys")).content.decode()
    assert "voice skill (rotated" in listing


def test_a_long_name_still_fits_when_rotated(alice: PartnerMembership, subscribed: ApiProduct) -> None:
    from datetime import timedelta

    from proxy import services

    old = factories.make_key(alice.partner, "x" * 100)
    services.api_key_rotate(key=old, grace=timedelta(0))
    old.refresh_from_db()
    assert len(old.name) == 100 and old.name.endswith("UTC)")
    services.api_key_rotate(key=ApiKey.objects.exclude(pk=old.pk).get(), grace=timedelta(0), name="other")
    assert ApiKey.objects.filter(name="other").exists() and ApiKey.objects.filter(name="x" * 100).exists()


@pytest.mark.parametrize("auto", [True, False])
def test_sign_up_promises_a_staff_review_only_when_there_is_one(client: Client, auto: bool) -> None:
    with override_settings(PORTAL_AUTO_APPROVE=auto):
        page = client.get(reverse("portal:signup")).content.decode()
    assert ("Staff then review" in page) is not auto
    assert ("active: subscribe to APIs and create keys straight away" in page) is auto


def _links(page: str) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', page.split('id="next-heading"')[1].split("</section>")[0]))


def test_a_pending_partners_dashboard_offers_only_steps_it_can_take(alice: PartnerMembership, client: Client) -> None:
    alice.partner.status = "pending"
    alice.partner.save()
    client.force_login(alice.user)
    links = _links(client.get(reverse("portal:home")).content.decode())
    assert reverse("portal:key-create") not in links
    assert links == {reverse("portal:catalogue"), reverse("portal:team")}
    for link in links:
        assert client.get(link).status_code == 200

    dave = factories.make_member("dave@acme.example", alice.partner, role="developer")
    assert _links(client_for(dave).get(reverse("portal:home")).content.decode()) == {reverse("portal:catalogue")}


def test_a_suspended_partners_dashboard_offers_revoking_and_usage(alice: PartnerMembership) -> None:
    alice.partner.status = "suspended"
    alice.partner.save()
    client = client_for(alice)
    links = _links(client.get(reverse("portal:home")).content.decode())
    assert links == {reverse("portal:keys"), reverse("portal:usage")}


def test_an_active_partners_dashboard_keeps_its_three_steps(alice_client: Client) -> None:
    assert reverse("portal:key-create") in _links(alice_client.get(reverse("portal:home")).content.decode())


def test_the_demo_loader_publishes_the_demo_apis_reference(db: Any) -> None:
    from apigw.management.commands.loaddemo import load_demo

    load_demo()
    product = ApiProduct.objects.get(slug="appliance-api-v1")
    assert product.openapi is not None and "/api/v1/appliances" in product.openapi["paths"]
