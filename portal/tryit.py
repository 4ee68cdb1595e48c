"""What the portal tells a partner to call: the gateway's public base URL and a real path of a
product, for the OpenAPI document's ``servers`` (Swagger UI's "Try it out") and the new-key
page's snippet."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

from proxy.models import ApiProduct


def gateway_base_url(request: HttpRequest) -> str:
    """``GATEWAY_PUBLIC_URL``, or else the origin this request reached: the gateway and the portal
    are one process (apigw/asgi.py), so without a public URL configured that is the gateway."""
    configured: str = settings.GATEWAY_PUBLIC_URL
    return configured or request.build_absolute_uri("/").rstrip("/")


def gateway_origin() -> str | None:
    """The configured gateway's origin (scheme://host[:port]), for the portal's connect-src."""
    if not settings.GATEWAY_PUBLIC_URL:
        return None
    parts = urlsplit(settings.GATEWAY_PUBLIC_URL)
    return f"{parts.scheme}://{parts.netloc}"


def openapi_for_portal(product: ApiProduct, request: HttpRequest) -> dict[str, Any]:
    """The product's document with the gateway as its only server: "Try it out" calls the
    gateway (with the partner's key), never the upstream the document may name."""
    document = dict(product.openapi or {})
    document["servers"] = [{"url": gateway_base_url(request), "description": "API gateway"}]
    return document


def example_path(products: Iterable[ApiProduct]) -> str | None:
    """A path worth calling first: a GET operation without path parameters that answers at once
    (not an event stream) in a product's OpenAPI document (the alphabetically first: a jsonb
    document does not keep its key order), or else the path of one of its enabled prefix/exact
    routes."""
    products = list(products)
    for product in products:
        paths = (product.openapi or {}).get("paths") or {}
        candidates = [
            path
            for path, operations in (paths.items() if isinstance(paths, dict) else ())
            if isinstance(path, str) and path.startswith("/") and "{" not in path and _answers_at_once(operations)
        ]
        if candidates:
            return min(candidates)
    for product in products:
        route = (
            product.routes.filter(enabled=True, path_type__in=("prefix", "exact")).order_by("-priority", "name").first()
        )
        if route is not None:
            return str(route.path) or "/"
    return None


def _answers_at_once(operations: Any) -> bool:
    get = operations.get("get") if isinstance(operations, dict) else None
    if not isinstance(get, dict):
        return False
    responses = get.get("responses") or {}
    streams = any("text/event-stream" in (r.get("content") or {}) for r in responses.values() if isinstance(r, dict))
    return not streams


def curl_snippet(base_url: str, path: str, secret: str) -> str:
    return f"curl -H {shlex.quote('Authorization: Bearer ' + secret)} {shlex.quote(base_url + path)}"
