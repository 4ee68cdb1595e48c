from __future__ import annotations

from datetime import timedelta

from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from portal import selectors
from proxy.models import UsageHourly


def home(request: HttpRequest) -> HttpResponse:
    """The landing page for visitors; the organisation's dashboard for members."""
    member = selectors.membership_of(request.user)
    if member is None:
        return render(request, "portal/home.html", {"products": selectors.catalogue()[:6]})
    partner = member.partner
    since = timezone.now() - timedelta(hours=24)
    recent = UsageHourly.objects.filter(partner=partner, hour__gte=since).aggregate(
        requests=Sum("requests"), refused=Sum("status_429"), errors=Sum("status_5xx")
    )
    keys = list(selectors.partner_keys(partner))
    context = {
        "member": member,
        "partner": partner,
        "active_keys": sum(1 for k in keys if k.status == "active"),
        "subscriptions": selectors.partner_subscriptions(partner),
        "recent": {k: v or 0 for k, v in recent.items()},
        "team_size": selectors.team(partner).count(),
    }
    return render(request, "portal/dashboard.html", context)
