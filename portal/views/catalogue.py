"""The catalogue (public): published products, their OpenAPI documents and the plans on offer."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal import emails, selectors, services, tryit
from portal.access import member_view
from portal.errors import PortalError
from portal.forms import SubscribeForm
from portal.models import PartnerMembership


def catalogue(request: HttpRequest) -> HttpResponse:
    member = selectors.membership_of(request.user)
    subscribed = {}
    if member is not None:
        subscribed = {s.product_id: s for s in selectors.partner_subscriptions(member.partner)}
    products = [(p, subscribed.get(p.pk)) for p in selectors.catalogue()]
    return render(request, "portal/catalogue/list.html", {"products": products, "member": member})


def product(request: HttpRequest, slug: str) -> HttpResponse:
    item = selectors.product_get(slug)
    member = selectors.membership_of(request.user)
    subscription = None
    if member is not None:
        subscription = selectors.partner_subscriptions(member.partner).filter(product=item).first()
    context = {
        "product": item,
        "plans": selectors.plans_on_offer(),
        "member": member,
        "subscription": subscription,
        "gateway_url": tryit.gateway_base_url(request),
        "example_path": tryit.example_path([item]),
    }
    return render(request, "portal/catalogue/product.html", context)


def openapi(request: HttpRequest, slug: str) -> JsonResponse:
    item = selectors.product_get(slug)
    if not item.openapi:
        raise Http404("No OpenAPI document is published for this product.")
    return JsonResponse(tryit.openapi_for_portal(item, request))


@require_POST
@member_view(active=True)
def subscribe(request: HttpRequest, member: PartnerMembership, slug: str) -> HttpResponse:
    item = selectors.product_get(slug)
    plans = selectors.plans_on_offer()
    form = SubscribeForm(request.POST, plans=plans)
    if not form.is_valid():
        messages.error(request, "Choose one of the plans on offer.")
        return redirect("portal:product", slug=item.slug)
    try:
        subscription = services.subscription_request(by=member, product=item, plan=form.cleaned_data["plan"])
    except PortalError as exc:
        messages.error(request, str(exc))
        return redirect("portal:product", slug=item.slug)
    if subscription.status == "pending":
        emails.staff_subscription_request(request, subscription)
        messages.info(request, f"Your request for {item.name} is waiting for staff approval; we will email you.")
    else:
        messages.success(request, f"Subscribed to {item.name} on the {subscription.plan.name} plan.")
    return redirect("portal:subscriptions")
