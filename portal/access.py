"""Who may open a portal view: the decorator every member view wears.

``member_view`` logs the user in (or sends them to the login page), finds their membership and
passes it to the view as its second argument; owner-only and active-organisation-only views say
so in its arguments and get a 403 page explaining why. Objects are then looked up through
``portal.selectors`` scoped to ``member.partner``, so ids of other partners' objects are 404s.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal import selectors
from portal.models import PartnerMembership

MemberView = Callable[..., HttpResponse]


def refuse(request: HttpRequest, message: str, member: PartnerMembership | None = None) -> HttpResponse:
    return render(request, "portal/forbidden.html", {"message": message, "member": member}, status=403)


def member_view(*, owner: bool = False, active: bool = False) -> Callable[[MemberView], Callable[..., HttpResponse]]:
    def decorate(view: MemberView) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            member = selectors.membership_of(request.user)
            if member is None:
                return refuse(request, "This login does not belong to an organisation on the portal.")
            if owner and not member.is_owner:
                return refuse(request, "Only an owner of the organisation can do this.", member)
            if active and member.partner.status != "active":
                status = member.partner.get_status_display().lower()
                return refuse(request, f"{member.partner.name} is {status}: this is not possible now.", member)
            return view(request, member, *args, **kwargs)

        return wrapper

    return decorate
