"""Writes for admin API tokens (keyword-only, atomic), like proxy/services.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from adminapi import tokens
from adminapi.models import AdminToken

# last_used_at is written at most this often per token: a busy script must not turn every
# API call into a database write.
LAST_USED_PRECISION = timedelta(minutes=1)


def admin_token_may_act_for(*, by: Any, user: Any) -> bool:
    """A token acts with its user's permissions, so minting one for somebody else is acting as
    them: only superusers may (they can do everything anyway)."""
    return bool(by.is_active and (by.is_superuser or by.pk == user.pk))


@transaction.atomic
def admin_token_create(
    *, user: Any, name: str, expires_at: datetime | None = None, by: Any = None
) -> tuple[AdminToken, str]:
    """Create a token for a staff user; returns it with its secret, which is not stored.
    ``by``: the staff user asking (None: the shell, which has the database anyway)."""
    if by is not None and not admin_token_may_act_for(by=by, user=user):
        raise PermissionDenied("Only a superuser may create a token for another user.")
    while True:
        secret, prefix = tokens.generate()
        if not AdminToken.objects.filter(prefix=prefix).exists():
            break
    token = AdminToken(
        user=user,
        name=name,
        prefix=prefix,
        expires_at=expires_at,
        hashed=tokens.digest(bytes(settings.API_KEY_PEPPER), secret),
    )
    token.full_clean()
    token.save()
    return token, secret


def admin_token_touch(*, token: AdminToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        # update(): no signal, so no audit entry for mere use.
        AdminToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


@transaction.atomic
def admin_token_delete(*, token: AdminToken, by: Any = None) -> None:
    if by is not None and not admin_token_may_act_for(by=by, user=token.user):
        raise PermissionDenied("Only a superuser may delete another user's token.")
    token.delete()
