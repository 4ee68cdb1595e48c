"""The team: members and their roles, invitations (sent by owners, accepted by signed link)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from portal import emails, selectors, services, tokens
from portal.access import member_view
from portal.errors import PortalError
from portal.forms import InvitationAcceptForm, InvitationForm, RoleForm
from portal.models import Invitation, PartnerMembership


def _team_page(request: HttpRequest, member: PartnerMembership, form: InvitationForm | None = None) -> HttpResponse:
    context = {
        "member": member,
        "members": selectors.team(member.partner),
        "invitations": selectors.invitations(member.partner),
        "form": form or InvitationForm(),
    }
    return render(request, "portal/team/team.html", context, status=400 if form is not None else 200)


@member_view()
def team(request: HttpRequest, member: PartnerMembership) -> HttpResponse:
    return _team_page(request, member)


@require_POST
@member_view(owner=True)
def invite(request: HttpRequest, member: PartnerMembership) -> HttpResponse:
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            invitation = services.invitation_create(
                by=member, email=form.cleaned_data["email"], role=form.cleaned_data["role"]
            )
        except PortalError as exc:
            form.add_error("email", str(exc))
        else:
            emails.invitation(request, invitation)
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect("portal:team")
    return _team_page(request, member, form)


@require_POST
@member_view(owner=True)
def invitation_cancel(request: HttpRequest, member: PartnerMembership, invitation_id: int) -> HttpResponse:
    invitation = selectors.invitation_get(member.partner, invitation_id)
    services.invitation_cancel(by=member, invitation=invitation)
    messages.success(request, f"The invitation to {invitation.email} is cancelled.")
    return redirect("portal:team")


@require_POST
@member_view(owner=True)
def member_role(request: HttpRequest, member: PartnerMembership, member_id: int) -> HttpResponse:
    other = selectors.member_get(member.partner, member_id)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            services.membership_set_role(by=member, member=other, role=form.cleaned_data["role"])
            messages.success(request, f"{other.user.email} is now {other.get_role_display().lower()}.")
        except PortalError as exc:
            messages.error(request, str(exc))
    return redirect("portal:team")


@require_http_methods(["GET", "POST"])
@member_view()
def member_remove(request: HttpRequest, member: PartnerMembership, member_id: int) -> HttpResponse:
    """Owners remove anyone but the last owner; everyone else may only remove themselves (leave)."""
    other = selectors.member_get(member.partner, member_id)
    leaving = other.pk == member.pk
    if not leaving and not member.is_owner:
        return render(
            request,
            "portal/forbidden.html",
            {"member": member, "message": "Only an owner can remove members of the team."},
            status=403,
        )
    if request.method == "POST":
        try:
            services.membership_remove_check(by=member, member=other)
        except PortalError as exc:
            messages.error(request, str(exc))
            return redirect("portal:team")
        if leaving:
            # Signed out first: nothing done after this point acts as a login that is going away.
            logout(request)
            services.membership_remove(by=member, member=other)
            messages.success(request, "You left the organisation; your portal login is deleted.")
            return redirect("portal:home")
        services.membership_remove(by=member, member=other)
        messages.success(request, f"{other.user.email} is removed from the team.")
        return redirect("portal:team")
    return render(request, "portal/team/remove.html", {"member": member, "other": other, "leaving": leaving})


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    claim = tokens.read_invitation_token(token)
    invitation = None
    if claim is not None:
        invitation = (
            Invitation.objects.select_related("partner", "invited_by")
            .filter(pk=claim.id, email__iexact=claim.email)
            .first()
        )
    if invitation is None:
        return render(request, "portal/team/invitation_invalid.html", status=400)
    if request.user.is_authenticated:
        return render(
            request, "portal/team/invitation_invalid.html", {"signed_in": True, "invitation": invitation}, status=400
        )
    form = InvitationAcceptForm(request.POST if request.method == "POST" else None, email=invitation.email)
    if request.method == "POST" and form.is_valid():
        try:
            membership = services.invitation_accept(
                invitation=invitation,
                contact_name=form.cleaned_data["contact_name"],
                password=form.cleaned_data["password1"],
            )
        except PortalError as exc:
            form.add_error(None, str(exc))
        else:
            login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome to {membership.partner.name}.")
            return redirect("portal:home")
    return render(request, "portal/team/invitation_accept.html", {"invitation": invitation, "form": form})
