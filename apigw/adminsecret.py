"""Django admin's one-time display of a new secret (admin API token, API key)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

_ATTRIBUTE = "_new_secret"


def remember(request: HttpRequest, secret: str) -> None:
    """Called from ``save_model``; ``response_add`` of the same request reads it."""
    setattr(request, _ATTRIBUTE, secret)


def response(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, obj: Any, *, owner: str, usage: str
) -> TemplateResponse | None:
    secret = getattr(request, _ATTRIBUTE, None)
    if secret is None:
        return None
    opts = model_admin.opts
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "title": "Copy it now",
        "object": obj,
        "owner": owner,
        "secret": secret,
        "usage": usage,
        "done_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
    }
    page = TemplateResponse(request, "admin/secret_once.html", context)
    page["Cache-Control"] = "no-store"
    return page
