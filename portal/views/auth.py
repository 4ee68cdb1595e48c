"""Sign-up, email verification, log in / out, password reset and change."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.hashers import make_password
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from apigw import throttle
from apigw.clientip import client_ip
from portal import emails, services, tokens
from portal.errors import PortalError
from portal.forms import LoginForm, ResendVerificationForm, SignupForm
from portal.models import PartnerMembership

TOO_MANY = "Too many requests from your network. Try again in an hour."


def _too_many(request: HttpRequest, template: str, form: Any) -> HttpResponse:
    form.add_error(None, TOO_MANY)
    return render(request, template, {"form": form}, status=429)


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """The answer is the same whether the address has an account or not (the page must not tell
    which addresses are customers'); the mail tells its owner which."""
    if request.user.is_authenticated:
        return redirect("portal:home")
    form = SignupForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if not throttle.mail_action_allowed_from("signup", client_ip(request)):
            return _too_many(request, "portal/auth/signup.html", form)
        data = form.cleaned_data
        email = services.normalise_email(data["email"])
        membership = None
        if not services.email_taken(email):
            try:
                membership = services.signup(
                    organisation=data["organisation"],
                    contact_name=data["contact_name"],
                    email=email,
                    password=data["password1"],
                )
            except PortalError:  # taken by a concurrent sign-up: answer as for any existing address
                membership = None
        else:
            make_password(data["password1"])  # about as long as creating the account: no timing tell
        if throttle.mail_allowed_to("signup", email):
            if membership is not None:
                emails.verification(request, membership)
            else:
                emails.signup_existing(request, email)
        return redirect("portal:signup-done")
    return render(request, "portal/auth/signup.html", {"form": form})


def signup_done(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/auth/signup_done.html")


@never_cache
def verify(request: HttpRequest, token: str) -> HttpResponse:
    claim = tokens.read_verification_token(token)
    membership = None
    if claim is not None:
        membership = (
            PartnerMembership.objects.select_related("user", "partner")
            .filter(user_id=claim.id, user__email__iexact=claim.email)
            .first()
        )
    if membership is None:
        return render(request, "portal/auth/verify_failed.html", status=400)
    if membership.email_verified_at is None:
        awaits_approval = services.email_verify(membership=membership)
        if awaits_approval:
            emails.staff_new_partner(request, membership.partner)
    membership.partner.refresh_from_db()
    return render(request, "portal/auth/verified.html", {"membership": membership})


@require_http_methods(["GET", "POST"])
def resend_verification(request: HttpRequest) -> HttpResponse:
    form = ResendVerificationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if not throttle.mail_action_allowed_from("resend", client_ip(request)):
            return _too_many(request, "portal/auth/resend.html", form)
        email = services.normalise_email(form.cleaned_data["email"])
        membership = (
            PartnerMembership.objects.select_related("user", "partner")
            .filter(user__email__iexact=email, email_verified_at__isnull=True)
            .first()
        )
        if membership is not None and throttle.mail_allowed_to("resend", email):
            emails.verification(request, membership)
        # The same answer either way: the page must not tell which addresses have accounts.
        messages.success(request, "If that address has an unverified account, a new link is on its way.")
        return redirect("portal:login")
    return render(request, "portal/auth/resend.html", {"form": form})


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "portal/auth/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        if getattr(form, "throttled", False):
            response.status_code = 429
        return response


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "portal/auth/password_reset.html"
    email_template_name = "portal/email/password_reset.txt"
    subject_template_name = "portal/email/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password-reset-done")

    def form_valid(self, form: Any) -> HttpResponse:
        if not throttle.mail_action_allowed_from("password-reset", client_ip(self.request)):
            return _too_many(self.request, self.template_name, form)
        if not throttle.mail_allowed_to("password-reset", services.normalise_email(form.cleaned_data["email"])):
            return redirect(self.success_url)  # the same answer, no mail: the address had its share
        return super().form_valid(form)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "portal/auth/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "portal/auth/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password-reset-complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "portal/auth/password_reset_complete.html"


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "portal/auth/password_change.html"
    success_url = reverse_lazy("portal:home")

    def form_valid(self, form: Any) -> HttpResponse:
        messages.success(self.request, "Your password is changed.")
        return super().form_valid(form)
