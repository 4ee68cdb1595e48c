"""Content-Security-Policy on every page Django serves: portal, Django admin, the admin API's
Swagger UI (and their error pages).

Every script, style, font and image is served from /static/ (Swagger UI from
drf-spectacular-sidecar, its start script from a URL of its own; admin's "Test a request" styles
from a file), the portal's charts are inline SVG markup, and no page has inline script or style:
so the policy allows 'self' only, and nothing is ever framed. Django admin's own templates have
no inline script or style either (it sets styles from its static JS, which CSP allows). Set by
middleware rather than per view so that error pages and Django's auth views get it too; a view
that sets its own policy keeps it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from portal import tryit

DEFAULT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY or DEFAULT_POLICY
        origin = tryit.gateway_origin()
        if origin and not settings.CONTENT_SECURITY_POLICY:
            # Swagger UI's "Try it out" calls the gateway from the page (the route needs CORS
            # for the portal's origin when that is another one).
            self.policy = self.policy.replace("connect-src 'self'", f"connect-src 'self' {origin}")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
