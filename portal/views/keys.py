"""API keys: list, create (secret shown once), detail, rotate with a grace period, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from portal import reports, selectors, services, tryit
from portal.access import member_view
from portal.errors import PortalError
from portal.forms import KeyCreateForm, KeyRevokeForm, KeyRotateForm
from portal.models import PartnerMembership
from proxy.models import ApiKey


def _secret_page(
    request: HttpRequest, member: PartnerMembership, key: ApiKey, secret: str, rotated: ApiKey | None = None
) -> HttpResponse:
    # Rendered in the POST's own response and never stored (not even in the session): a reload
    # cannot show it again, and no cache may keep it.
    base_url = tryit.gateway_base_url(request)
    path = tryit.example_path(key.products.all() or selectors.subscribed_products(member.partner))
    context = {
        "member": member,
        "key": key,
        "secret": secret,
        "rotated": rotated,
        "gateway_url": base_url,
        "try_it": tryit.curl_snippet(base_url, path, secret) if path else None,
    }
    response = render(request, "portal/keys/secret.html", context)
    response["Cache-Control"] = "no-store"
    return response


@member_view()
def key_list(request: HttpRequest, member: PartnerMembership) -> HttpResponse:
    context = {
        "member": member,
        "keys": selectors.partner_keys(member.partner),
        "gateway_url": tryit.gateway_base_url(request),
    }
    return render(request, "portal/keys/list.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@member_view(active=True)
def key_create(request: HttpRequest, member: PartnerMembership) -> HttpResponse:
    products = selectors.subscribed_products(member.partner)
    form = KeyCreateForm(request.POST if request.method == "POST" else None, products=products)
    if request.method == "POST" and form.is_valid():
        try:
            key, secret = services.key_create(
                by=member,
                name=form.cleaned_data["name"],
                products=list(form.cleaned_data["products"]),
                expires_at=form.expires_at,
            )
        except PortalError as exc:
            form.add_error(None, str(exc))
        else:
            return _secret_page(request, member, key, secret)
    return render(
        request, "portal/keys/create.html", {"member": member, "form": form, "has_products": products.exists()}
    )


@member_view()
def key_detail(request: HttpRequest, member: PartnerMembership, key_id: int) -> HttpResponse:
    key = selectors.key_get(member.partner, key_id)
    report = reports.usage_report(partner=member.partner, range_name="24h", key=key)
    context = {
        "member": member,
        "key": key,
        "totals": report.totals,
        "quotas": reports.quota_lines(partner=member.partner, key=key),
    }
    return render(request, "portal/keys/detail.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@member_view(active=True)
def key_rotate(request: HttpRequest, member: PartnerMembership, key_id: int) -> HttpResponse:
    key = selectors.key_get(member.partner, key_id)
    form = KeyRotateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            new_key, secret = services.key_rotate(by=member, key=key, grace=form.grace_period)
        except PortalError as exc:
            form.add_error(None, str(exc))
        else:
            key.refresh_from_db()
            return _secret_page(request, member, new_key, secret, rotated=key)
    return render(request, "portal/keys/rotate.html", {"member": member, "key": key, "form": form})


@require_http_methods(["GET", "POST"])
@member_view()
def key_revoke(request: HttpRequest, member: PartnerMembership, key_id: int) -> HttpResponse:
    key = selectors.key_get(member.partner, key_id)
    form = KeyRevokeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        services.key_revoke(by=member, key=key)
        messages.success(request, f"Key {key.prefix} ({key.name}) is revoked; every gateway refuses it now.")
        return redirect("portal:keys")
    return render(request, "portal/keys/revoke.html", {"member": member, "key": key, "form": form})
