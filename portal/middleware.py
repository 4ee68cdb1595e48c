"""Content-Security-Policy for the portal's pages.

Every script, style, font and image the portal uses is served from /static/ (Swagger UI
included), the charts are inline SVG markup, and no page has inline script or style: so the
policy allows 'self' only, and nothing is ever framed. Set by middleware rather than per view so
that error pages and Django's auth views get it too. The admin is left alone (it has inline JS).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from portal import tryit

DEFAULT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = settings.PORTAL_CONTENT_SECURITY_POLICY or DEFAULT_POLICY
        origin = tryit.gateway_origin()
        if origin and not settings.PORTAL_CONTENT_SECURITY_POLICY:
            # Swagger UI's "Try it out" calls the gateway from the page (the route needs CORS
            # for the portal's origin when that is another one).
            self.policy = self.policy.replace("connect-src 'self'", f"connect-src 'self' {origin}")
        self._prefix: str | None = None

    @property
    def prefix(self) -> str:
        if self._prefix is None:  # the URLconf is not ready when the middleware is built
            self._prefix = reverse("portal:home")
        return self._prefix

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(self.prefix) and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
