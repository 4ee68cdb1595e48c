from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from portal import selectors, services
from portal.access import member_view
from portal.models import PartnerMembership


@member_view()
def subscriptions(request: HttpRequest, member: PartnerMembership) -> HttpResponse:
    context = {"member": member, "subscriptions": selectors.partner_subscriptions(member.partner)}
    return render(request, "portal/subscriptions/list.html", context)


@require_http_methods(["GET", "POST"])
@member_view(owner=True)
def cancel(request: HttpRequest, member: PartnerMembership, subscription_id: int) -> HttpResponse:
    subscription = selectors.subscription_get(member.partner, subscription_id)
    if request.method == "POST":
        services.subscription_cancel(by=member, subscription=subscription)
        messages.success(request, f"The subscription to {subscription.product.name} is cancelled.")
        return redirect("portal:subscriptions")
    return render(request, "portal/subscriptions/cancel.html", {"member": member, "subscription": subscription})
