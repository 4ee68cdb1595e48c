"""Attributes changes made during a request to its user (see audit/context.py)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse


def _source(path: str) -> str:
    try:
        admin_prefix = reverse("admin:index")
    except NoReverseMatch:
        admin_prefix = "/admin/"
    if path.startswith("/api/admin/"):
        return "api"
    if path.startswith(admin_prefix):
        return "admin"
    if path.startswith("/portal/"):
        return "portal"
    return "system"


class AuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from audit.context import acting

        with acting(_source(request.path_info), request=request):
            return self.get_response(request)
