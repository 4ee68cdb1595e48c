"""Throttled sign-in for the portal and for Django admin: one rule (apigw/throttle.py), two forms.

A locked (account, IP) pair or IP is refused before the password is checked, even when it is
right, so the lock cannot be used as an oracle, and the page answers 429.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest, HttpResponse

from apigw import throttle
from apigw.clientip import client_ip

THROTTLED_MESSAGE = "Too many failed sign-ins. Wait a few minutes, or reset your password."


class ThrottledLoginMixin(forms.Form):
    """For subclasses of Django's ``AuthenticationForm`` (``self.request`` is set)."""

    request: HttpRequest | None
    throttled = False

    def clean(self) -> dict[str, Any]:
        account = (self.cleaned_data.get("username") or "").strip().lower()
        ip = client_ip(self.request) if self.request is not None else "unknown"
        if account and throttle.login_locked(account, ip):
            self.throttled = True
            raise forms.ValidationError(THROTTLED_MESSAGE, code="throttled")
        try:
            cleaned = super().clean() or {}
        except forms.ValidationError:
            if account:
                throttle.login_failed(account, ip)
            raise
        throttle.login_succeeded(account, ip)
        return cleaned


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


# Django admin's own login view uses this form from now on (apigw/urls.py imports this module).
admin.site.login_form = AdminLoginForm


def admin_login(request: HttpRequest) -> HttpResponse:
    """/admin/login/, ahead of the admin's own URL: Django's view with the throttled form, and
    429 when the form says so."""
    response = admin.site.login(request)
    form = (getattr(response, "context_data", None) or {}).get("form")
    if getattr(form, "throttled", False):
        response.status_code = 429
    return response
