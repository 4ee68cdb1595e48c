"""Writes to the gateway configuration, as named service functions (keyword-only, atomic).

Views, the admin API and management commands call these; each change reaches every gateway
through the config-version bump that the model signals fire on commit (proxy/signals.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from proxy.gateway import apikeys
from proxy.models import ApiKey, ApiProduct, Partner, Plan, Subscription


def _pepper() -> bytes:
    from django.conf import settings

    return bytes(settings.API_KEY_PEPPER)


@transaction.atomic
def partner_get_or_create(*, slug: str, name: str = "", status: str = "active", contact_email: str = "") -> Partner:
    partner, _ = Partner.objects.get_or_create(
        slug=slug, defaults={"name": name or slug, "status": status, "contact_email": contact_email}
    )
    return partner


@transaction.atomic
def partner_set_status(*, partner: Partner, status: str) -> Partner:
    partner.status = status
    partner.full_clean()
    partner.save(update_fields=["status"])
    return partner


@transaction.atomic
def subscription_set(*, partner: Partner, product: ApiProduct, plan: Plan, status: str = "active") -> Subscription:
    subscription, _ = Subscription.objects.update_or_create(
        partner=partner, product=product, defaults={"plan": plan, "status": status}
    )
    return subscription


@transaction.atomic
def api_key_create(
    *, partner: Partner, name: str, products: Iterable[ApiProduct] = (), expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Create a key; returns it with its secret, which is not stored and cannot be shown again."""
    while True:
        secret, prefix = apikeys.generate()
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    key = ApiKey(
        partner=partner, name=name, prefix=prefix, hashed=apikeys.digest(_pepper(), secret), expires_at=expires_at
    )
    key.full_clean()
    key.save()
    products = list(products)
    if products:
        key.products.set(products)
    return key, secret


@transaction.atomic
def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


@transaction.atomic
def api_key_rotate(*, key: ApiKey, grace: timedelta, name: str | None = None) -> tuple[ApiKey, str]:
    """A new key with the same products; the old one keeps working for ``grace``, then expires.
    When the new key takes the old one's name, the old one is renamed "<name> (rotated <date>)":
    two keys of one name in the list (one of them expiring) would be told apart by prefix only."""
    new_key, secret = api_key_create(
        partner=key.partner, name=name or key.name, products=key.products.all(), expires_at=key.expires_at
    )
    now = timezone.now()
    ends = now + grace
    fields = []
    if key.expires_at is None or key.expires_at > ends:
        key.expires_at = ends
        fields.append("expires_at")
    if new_key.name == key.name:
        key.name = rotated_name(key.name, now)
        fields.append("name")
    if fields:
        key.save(update_fields=fields)
    return new_key, secret


def rotated_name(name: str, when: datetime) -> str:
    suffix = f" (rotated {when:%Y-%m-%d %H:%M} UTC)"
    limit = ApiKey._meta.get_field("name").max_length or 100
    return name[: limit - len(suffix)] + suffix


def api_key_find(value: str) -> ApiKey | None:
    """By prefix (as listings show it, with or without the ``gw_`` of the key) or by the whole key."""
    value = value.strip()
    prefix = apikeys.split(value)
    if prefix is not None:
        key = ApiKey.objects.filter(prefix=prefix).first()
        return key if key is not None and apikeys.verify(_pepper(), value, key.hashed) else None
    return ApiKey.objects.filter(prefix=value.removeprefix(apikeys.KEY_PREFIX)).first()


def unique_slug(name: str, model: type[Partner]) -> str:
    base = slugify(name)[:90] or "partner"
    slug, n = base, 1
    while model.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug
