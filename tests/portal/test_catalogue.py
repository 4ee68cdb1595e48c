"""The catalogue: published products, their OpenAPI documents (Swagger UI, local assets), plans."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from portal.models import PartnerMembership
from proxy.models import ApiProduct, Plan
from tests.portal import factories

pytestmark = pytest.mark.django_db


def test_the_catalogue_lists_published_products_to_anyone(client: Client, product: ApiProduct) -> None:
    factories.make_product("internal", name="Internal API", published=False)
    response = client.get(reverse("portal:catalogue"))
    assert response.status_code == 200
    assert b"Appliances" in response.content
    assert b"Internal API" not in response.content


def test_a_product_page_shows_the_public_plans_and_the_reference(
    client: Client, product: ApiProduct, plan: Plan
) -> None:
    factories.make_plan("private", name="Private deal", public=False)
    response = client.get(reverse("portal:product", args=[product.slug]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Starter" in body and "600/minute" in body and "1,000 per day" in body and "20,000 per month" in body
    assert "Private deal" not in body
    assert 'id="swagger-ui"' in body and 'data-spec-url="/portal/catalogue/appliances/openapi.json"' in body
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in body
    assert "Sign up" in body  # anonymous visitors are asked to sign up to subscribe


def test_the_swagger_ui_assets_are_served_locally() -> None:
    for asset in (
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
        "portal/apidocs.js",
        "portal/portal.js",
        "portal/portal.css",
    ):
        assert finders.find(asset), asset


def test_the_openapi_document_is_served_as_json(client: Client, product: ApiProduct) -> None:
    response = client.get(reverse("portal:product-openapi", args=[product.slug]))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json()["info"]["title"] == "Appliance API"


def test_a_product_without_a_document_says_so(client: Client) -> None:
    bare = factories.make_product("bare", openapi=None)
    assert b"No reference documentation" in client.get(reverse("portal:product", args=[bare.slug])).content
    assert client.get(reverse("portal:product-openapi", args=[bare.slug])).status_code == 404


def test_unpublished_and_unknown_products_are_404(client: Client) -> None:
    hidden = factories.make_product("hidden", published=False)
    for name in ("portal:product", "portal:product-openapi"):
        assert client.get(reverse(name, args=[hidden.slug])).status_code == 404
        assert client.get(reverse(name, args=["nope"])).status_code == 404


def test_members_see_their_subscription_in_the_catalogue(
    alice_client: Client, alice: PartnerMembership, product: ApiProduct, plan: Plan
) -> None:
    factories.subscribe(alice.partner, product, plan)
    body = alice_client.get(reverse("portal:catalogue")).content.decode()
    assert "status-active" in body
    body = alice_client.get(reverse("portal:product", args=[product.slug])).content.decode()
    assert "Change plan" in body and f'value="{plan.pk}" id="plan-{plan.pk}" checked' in body
