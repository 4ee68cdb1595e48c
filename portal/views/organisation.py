"""The organisation's settings: its name, and deleting it (owners only)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from portal import services
from portal.access import member_view
from portal.forms import OrganisationDeleteForm, OrganisationForm
from portal.models import PartnerMembership


@require_http_methods(["GET", "POST"])
@member_view()
def organisation(request: HttpRequest, member: PartnerMembership) -> HttpResponse:
    form = OrganisationForm(request.POST if request.method == "POST" else None, initial={"name": member.partner.name})
    if request.method == "POST":
        if not member.is_owner:
            return render(
                request,
                "portal/forbidden.html",
                {"member": member, "message": "Only an owner can rename the organisation."},
                status=403,
            )
        if form.is_valid():
            services.organisation_rename(by=member, name=form.cleaned_data["name"])
            messages.success(request, "The organisation's name is saved.")
            return redirect("portal:organisation")
    return render(request, "portal/organisation/settings.html", {"member": member, "form": form})


@require_http_methods(["GET", "POST"])
@member_view(owner=True)
def organisation_delete(request: HttpRequest, member: PartnerMembership) -> HttpResponse:
    form = OrganisationDeleteForm(request.POST if request.method == "POST" else None, name=member.partner.name)
    if request.method == "POST" and form.is_valid():
        name = member.partner.name
        # Signed out first: nothing done after this point acts as a login that is going away.
        logout(request)
        services.organisation_delete(by=member)
        messages.success(request, f"{name} is deleted, with its keys, subscriptions, usage and logins.")
        return redirect("portal:home")
    return render(request, "portal/organisation/delete.html", {"member": member, "form": form})
