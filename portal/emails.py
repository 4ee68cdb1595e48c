"""The emails the portal sends. Plain text from templates/portal/email/<name>.txt, whose first
line is the subject. Links are absolute, built from the request that caused the email."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from portal import selectors, tokens
from portal.models import Invitation, PartnerMembership
from proxy.models import Partner, Subscription

log = logging.getLogger("apigw.portal")


def _send(name: str, recipients: Iterable[str], context: dict[str, Any]) -> int:
    to = sorted({r for r in recipients if r})
    if not to:
        log.warning("email %s has no recipient; not sent", name)
        return 0
    subject, _, body = render_to_string(f"portal/email/{name}.txt", context).strip().partition("\n")
    return send_mail(subject.strip(), body.strip() + "\n", None, to)


def staff_recipients() -> list[str]:
    """PORTAL_STAFF_EMAILS, or else every active staff user with an email address."""
    if settings.PORTAL_STAFF_EMAILS:
        return list(settings.PORTAL_STAFF_EMAILS)
    return list(
        get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="").values_list("email", flat=True)
    )


def owner_recipients(partner: Partner) -> list[str]:
    return [m.user.email for m in selectors.owners(partner)] or [partner.contact_email]


def verification(request: HttpRequest, membership: PartnerMembership) -> int:
    token = tokens.verification_token(membership.user.pk, membership.user.email)
    link = request.build_absolute_uri(reverse("portal:verify", args=[token]))
    return _send("verify", [membership.user.email], {"membership": membership, "link": link})


def signup_existing(request: HttpRequest, email: str) -> int:
    """A sign-up with an address that has an account: the page answers as for a new one, the mail
    says which (a new verification link if the account was never confirmed)."""
    membership = (
        PartnerMembership.objects.select_related("user")
        .filter(user__email__iexact=email, email_verified_at__isnull=True)
        .first()
    )
    context: dict[str, Any] = {
        "unverified": membership is not None,
        "login_link": request.build_absolute_uri(reverse("portal:login")),
        "reset_link": request.build_absolute_uri(reverse("portal:password-reset")),
    }
    if membership is not None:
        token = tokens.verification_token(membership.user.pk, membership.user.email)
        context["verify_link"] = request.build_absolute_uri(reverse("portal:verify", args=[token]))
    return _send("signup_existing", [email], context)


def staff_new_partner(request: HttpRequest, partner: Partner) -> int:
    link = request.build_absolute_uri(reverse("admin:proxy_partner_change", args=[partner.pk]))
    return _send("staff_new_partner", staff_recipients(), {"partner": partner, "link": link})


def partner_approved(request: HttpRequest, partner: Partner) -> int:
    link = request.build_absolute_uri(reverse("portal:home"))
    return _send("partner_approved", owner_recipients(partner), {"partner": partner, "link": link})


def invitation(request: HttpRequest, invitation: Invitation) -> int:
    token = tokens.invitation_token(invitation.pk, invitation.email)
    link = request.build_absolute_uri(reverse("portal:invitation-accept", args=[token]))
    return _send("invitation", [invitation.email], {"invitation": invitation, "link": link})


def staff_subscription_request(request: HttpRequest, subscription: Subscription) -> int:
    link = request.build_absolute_uri(reverse("admin:proxy_subscription_change", args=[subscription.pk]))
    return _send("staff_subscription", staff_recipients(), {"subscription": subscription, "link": link})


def subscription_decided(request: HttpRequest, subscription: Subscription) -> int:
    link = request.build_absolute_uri(reverse("portal:subscriptions"))
    return _send(
        "subscription_decided", owner_recipients(subscription.partner), {"subscription": subscription, "link": link}
    )
