"""Test data for the portal: organisations with members, products with an OpenAPI document,
plans, invitations, usage rows. The configuration objects are made by ``tests.factories``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from portal.models import Invitation, PartnerMembership
from proxy import services
from proxy.models import ApiKey, ApiProduct, Partner, Plan, Subscription, UsageHourly
from tests import factories as config

PASSWORD = "correct-horse-battery-staple"

OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Appliance API", "version": "1.0.0", "description": "Control home appliances."},
    "paths": {
        "/api/v1/appliances": {
            "get": {
                "summary": "List appliances",
                "operationId": "listAppliances",
                "responses": {"200": {"description": "The appliances of the home"}},
            }
        }
    },
}


def make_product(slug: str = "appliances", **fields: Any) -> ApiProduct:
    defaults: dict[str, Any] = {
        "name": slug.replace("-", " ").title(),
        "description": f"The {slug} API.",
        "openapi": OPENAPI,
    }
    defaults.update(fields)
    return config.product(slug=slug, **defaults)


def make_plan(slug: str = "starter", **fields: Any) -> Plan:
    defaults: dict[str, Any] = {"name": slug.title(), "per_minute": 600, "quota_day": 1000, "quota_month": 20000}
    defaults.update(fields)
    return config.plan(slug=slug, **defaults)


def make_member(
    email: str,
    partner: Partner | str,
    role: str = "owner",
    status: str = "active",
    password: str = PASSWORD,
    verified: bool = True,
) -> PartnerMembership:
    if isinstance(partner, str):
        partner = services.partner_get_or_create(slug=partner, name=partner.title(), status=status, contact_email=email)
    user = User.objects.create_user(
        username=email, email=email, password=password, first_name=email.split("@")[0].title(), is_active=verified
    )
    return PartnerMembership.objects.create(
        user=user, partner=partner, role=role, email_verified_at=timezone.now() if verified else None
    )


def subscribe(partner: Partner, product: ApiProduct, plan: Plan, status: str = "active") -> Subscription:
    return config.subscription(partner=partner, product=product, plan=plan, status=status)


def make_key(partner: Partner, name: str = "key", products: list[ApiProduct] | None = None) -> ApiKey:
    key, _secret = config.api_key(partner=partner, name=name, products=products or [])
    return key


def invite(partner: Partner, email: str, **fields: Any) -> Invitation:
    return Invitation.objects.create(partner=partner, email=email, **fields)


def usage(
    partner: Partner, hour: datetime, *, key: ApiKey | None = None, product: str = "appliances", **counts: int
) -> UsageHourly:
    return UsageHourly.objects.create(partner=partner, key=key, hour=hour, product=product, **counts)
