from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from portal import selectors


def member(request: HttpRequest) -> dict[str, object]:
    """The signed-in user's membership, for the navigation; looked up only if a template uses it.
    Also whether sign-ups skip staff approval, so no page promises a review that will not happen."""
    return {
        "member": SimpleLazyObject(lambda: selectors.membership_of(request.user)),
        "portal_auto_approve": settings.PORTAL_AUTO_APPROVE,
    }
