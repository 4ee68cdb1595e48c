"""Reads of the developer portal. Every lookup by id is scoped to the member's partner, so an id
of another partner's object is simply not found (404), never "forbidden" (which would confirm
that it exists)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from portal.models import Invitation, PartnerMembership
from proxy.models import ApiKey, ApiProduct, Partner, Plan, Subscription


def membership_of(user: AbstractBaseUser | AnonymousUser) -> PartnerMembership | None:
    if not user.is_authenticated:
        return None
    return PartnerMembership.objects.select_related("partner", "user").filter(user_id=user.pk).first()


def catalogue() -> QuerySet[ApiProduct]:
    return ApiProduct.objects.filter(published=True)


def product_get(slug: str) -> ApiProduct:
    return get_object_or_404(catalogue(), slug=slug)


def plans_on_offer() -> QuerySet[Plan]:
    return Plan.objects.filter(public=True)


def partner_keys(partner: Partner) -> QuerySet[ApiKey]:
    return partner.keys.prefetch_related("products").order_by("-created")


def key_get(partner: Partner, key_id: int) -> ApiKey:
    return get_object_or_404(partner_keys(partner), pk=key_id)


def partner_subscriptions(partner: Partner) -> QuerySet[Subscription]:
    return partner.subscriptions.select_related("product", "plan").order_by("product__name")


def subscription_get(partner: Partner, subscription_id: int) -> Subscription:
    return get_object_or_404(partner_subscriptions(partner), pk=subscription_id)


def subscribed_products(partner: Partner) -> QuerySet[ApiProduct]:
    """Products a key may be limited to: those with a subscription that is not rejected."""
    # One filter() call: both conditions on the same subscription row.
    return ApiProduct.objects.filter(subscriptions__partner=partner, subscriptions__status__in=["active", "pending"])


def team(partner: Partner) -> QuerySet[PartnerMembership]:
    return partner.memberships.select_related("user").order_by("-role", "created")


def member_get(partner: Partner, member_id: int) -> PartnerMembership:
    return get_object_or_404(team(partner), pk=member_id)


def invitations(partner: Partner) -> QuerySet[Invitation]:
    return partner.invitations.select_related("invited_by")


def invitation_get(partner: Partner, invitation_id: int) -> Invitation:
    return get_object_or_404(invitations(partner), pk=invitation_id)


def owners(partner: Partner) -> QuerySet[PartnerMembership]:
    return partner.memberships.filter(role="owner").select_related("user")
