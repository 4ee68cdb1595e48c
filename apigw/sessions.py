"""Staff sessions are short: a stolen admin session cookie is worth far more than a partner's, and
an operator logs in daily anyway. Partners keep SESSION_COOKIE_AGE."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver


@receiver(user_logged_in)
def shorten_staff_sessions(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session") and (user.is_staff or user.is_superuser):
        request.session.set_expiry(settings.STAFF_SESSION_SECONDS)
