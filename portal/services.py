"""Writes of the developer portal, as named service functions (keyword-only, atomic).

Gateway configuration (partners, subscriptions, keys) is written through ``proxy.services`` so
each change reaches the gateways by the usual config-version bump. Emails are sent by the views
after these return, so a rolled-back write never mails anyone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from portal.errors import NotAllowed, PortalError
from portal.models import Invitation, PartnerMembership
from proxy import services as proxy_services
from proxy.models import ApiKey, ApiProduct, Partner, Plan, Subscription


def normalise_email(email: str) -> str:
    return email.strip().lower()


def email_taken(email: str) -> bool:
    email = normalise_email(email)
    user_model = get_user_model()
    return (
        user_model.objects.filter(username__iexact=email).exists()
        or user_model.objects.filter(email__iexact=email).exists()
    )


def _create_user(*, email: str, contact_name: str, password: str, active: bool) -> User:
    email = normalise_email(email)
    if email_taken(email):
        raise PortalError("An account with this email address exists already.")
    # The login name is the email; the contact name is kept whole in first_name, since names do
    # not split reliably into first and last.
    user = get_user_model().objects.create_user(
        username=email, email=email, password=password, first_name=contact_name[:150], is_active=active
    )
    return user


# -- sign-up and approval -------------------------------------------------------------------------
@transaction.atomic
def signup(*, organisation: str, contact_name: str, email: str, password: str) -> PartnerMembership:
    """A new organisation (pending) with its owner, whose login works once the email is verified."""
    user = _create_user(email=email, contact_name=contact_name, password=password, active=False)
    partner = proxy_services.partner_get_or_create(
        slug=proxy_services.unique_slug(organisation, Partner),
        name=organisation.strip(),
        status="pending",
        contact_email=user.email,
    )
    return PartnerMembership.objects.create(user=user, partner=partner, role="owner")


@transaction.atomic
def email_verify(*, membership: PartnerMembership) -> bool:
    """Activate the login. Returns True when the organisation now awaits staff approval."""
    if membership.email_verified_at is not None:
        return False
    membership.email_verified_at = timezone.now()
    membership.save(update_fields=["email_verified_at"])
    user = membership.user
    user.is_active = True
    user.save(update_fields=["is_active"])
    partner = membership.partner
    if partner.status == "pending" and settings.PORTAL_AUTO_APPROVE:
        proxy_services.partner_set_status(partner=partner, status="active")
        return False
    return partner.status == "pending"


@transaction.atomic
def partner_approve(*, partner: Partner) -> bool:
    """Staff approval of a pending partner. Returns False when it was not pending."""
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    if partner.status != "pending":
        return False
    proxy_services.partner_set_status(partner=partner, status="active")
    return True


# -- team -----------------------------------------------------------------------------------------
def _require_owner(member: PartnerMembership) -> None:
    if not member.is_owner:
        raise NotAllowed("Only an owner of the organisation can do this.")


@transaction.atomic
def invitation_create(*, by: PartnerMembership, email: str, role: str) -> Invitation:
    _require_owner(by)
    email = normalise_email(email)
    if PartnerMembership.objects.filter(partner=by.partner, user__email__iexact=email).exists():
        raise PortalError(f"{email} is a member of the team already.")
    if email_taken(email):
        raise PortalError(f"{email} already has a portal login (a login belongs to one organisation).")
    invitation, _ = Invitation.objects.update_or_create(
        partner=by.partner, email=email, defaults={"role": role, "invited_by": by.user, "created": timezone.now()}
    )
    return invitation


@transaction.atomic
def invitation_cancel(*, by: PartnerMembership, invitation: Invitation) -> None:
    _require_owner(by)
    invitation.delete()


@transaction.atomic
def invitation_accept(*, invitation: Invitation, contact_name: str, password: str) -> PartnerMembership:
    """A new login for the invited address, verified by the link it followed."""
    user = _create_user(email=invitation.email, contact_name=contact_name, password=password, active=True)
    membership = PartnerMembership.objects.create(
        user=user, partner=invitation.partner, role=invitation.role, email_verified_at=timezone.now()
    )
    invitation.delete()
    return membership


def _owners_left(partner: Partner, without: PartnerMembership) -> int:
    return PartnerMembership.objects.filter(partner=partner, role="owner").exclude(pk=without.pk).count()


@transaction.atomic
def membership_set_role(*, by: PartnerMembership, member: PartnerMembership, role: str) -> PartnerMembership:
    _require_owner(by)
    if member.role == "owner" and role != "owner" and _owners_left(member.partner, member) == 0:
        raise PortalError("The organisation needs at least one owner: make someone else owner first.")
    member.role = role
    member.save(update_fields=["role"])
    return member


def _delete_login(member: PartnerMembership) -> None:
    user = member.user
    member.delete()
    # A portal login exists only for its organisation; staff accounts are kept.
    if not user.is_staff and not user.is_superuser:
        user.delete()


def membership_remove_check(*, by: PartnerMembership, member: PartnerMembership) -> None:
    """Raise unless ``by`` may remove ``member``: owners remove anyone, everyone may leave, but the
    last owner may not go. Separate so a leaving user can be logged out before the login goes."""
    if member.pk != by.pk:
        _require_owner(by)
    if member.role == "owner" and _owners_left(member.partner, member) == 0:
        raise PortalError("The last owner cannot leave or be removed; delete the organisation instead.")


@transaction.atomic
def membership_remove(*, by: PartnerMembership, member: PartnerMembership) -> None:
    membership_remove_check(by=by, member=member)
    _delete_login(member)


@transaction.atomic
def organisation_delete(*, by: PartnerMembership) -> None:
    """Delete the partner with its keys, subscriptions and usage, and its members' logins."""
    _require_owner(by)
    partner = by.partner
    members = list(PartnerMembership.objects.filter(partner=partner).select_related("user"))
    partner.delete()
    for member in members:
        _delete_login(member)


@transaction.atomic
def organisation_rename(*, by: PartnerMembership, name: str) -> Partner:
    _require_owner(by)
    partner = by.partner
    partner.name = name.strip()
    partner.full_clean()
    partner.save(update_fields=["name"])
    return partner


# -- subscriptions --------------------------------------------------------------------------------
def _require_active(partner: Partner) -> None:
    if partner.status != "active":
        raise NotAllowed(f"The organisation is {partner.get_status_display().lower()}: this is not possible now.")


@transaction.atomic
def subscription_request(*, by: PartnerMembership, product: ApiProduct, plan: Plan) -> Subscription:
    """Subscribe (or change plan). Products with manual approval wait for staff."""
    partner = by.partner
    _require_active(partner)
    if not product.published or not plan.public:
        raise PortalError("This product or plan is not on offer.")
    existing = Subscription.objects.select_for_update().filter(partner=partner, product=product).first()
    if existing is not None and existing.status == "active" and product.approval == "manual":
        if existing.plan_id == plan.pk:
            return existing
        raise PortalError("Plan changes for this product are approved by staff: contact them to change plan.")
    status = "active" if product.approval == "auto" else "pending"
    return proxy_services.subscription_set(partner=partner, product=product, plan=plan, status=status)


@transaction.atomic
def subscription_cancel(*, by: PartnerMembership, subscription: Subscription) -> None:
    _require_owner(by)
    subscription.delete()


@transaction.atomic
def subscription_decide(*, subscription: Subscription, approve: bool) -> bool:
    """Staff decision on a pending request. Returns False when it was not pending."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if subscription.status != "pending":
        return False
    subscription.status = "active" if approve else "rejected"
    subscription.save(update_fields=["status"])
    return True


# -- keys -----------------------------------------------------------------------------------------
def _subscribed_products(partner: Partner, products: list[ApiProduct]) -> list[ApiProduct]:
    allowed = set(
        Subscription.objects.filter(partner=partner).exclude(status="rejected").values_list("product_id", flat=True)
    )
    if any(p.pk not in allowed for p in products):
        raise PortalError("A key can only be limited to products the organisation subscribes to.")
    return products


def key_create(
    *, by: PartnerMembership, name: str, products: list[ApiProduct], expires_at: datetime | None
) -> tuple[ApiKey, str]:
    _require_active(by.partner)
    if expires_at is not None and expires_at <= timezone.now():
        raise PortalError("The expiry must be in the future.")
    return proxy_services.api_key_create(
        partner=by.partner,
        name=name.strip(),
        products=_subscribed_products(by.partner, products),
        expires_at=expires_at,
    )


def key_rotate(*, by: PartnerMembership, key: ApiKey, grace: timedelta) -> tuple[ApiKey, str]:
    _require_active(by.partner)
    if key.status != "active":
        raise PortalError("Only an active key can be rotated.")
    return proxy_services.api_key_rotate(key=key, grace=grace)


def key_revoke(*, by: PartnerMembership, key: ApiKey) -> ApiKey:
    # Allowed whatever the organisation's status: stopping a leaked key must always be possible.
    return proxy_services.api_key_revoke(key=key)
