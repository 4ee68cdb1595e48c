from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from portal import selectors


def member(request: HttpRequest) -> dict[str, object]:
    """The signed-in user's membership, for the navigation; looked up only if a template uses it."""
    return {"member": SimpleLazyObject(lambda: selectors.membership_of(request.user))}
