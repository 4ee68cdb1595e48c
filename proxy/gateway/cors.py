"""CORS for routes that configure it: preflights answered by the gateway, headers on the rest.

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is matched to the
route of the request it announces and answered ``204`` without authentication, limits or the
upstream: browsers send it without credentials. An origin, method or header the route does not
allow is a 403 with a code saying which (``cors_origin_not_allowed`` …), which is easier to
debug from a browser console than a silent missing header.

On other requests with an allowed ``Origin`` the gateway adds ``Access-Control-Allow-Origin``
(and ``-Credentials``, ``-Expose-Headers``) to whatever it answers, errors included, so a page
can read a 401 or 429. The upstream's own ``Access-Control-*`` headers are dropped on these
routes: one source of truth. Per-request work is a set lookup; everything else is precomputed
(after Starlette's CORSMiddleware).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from proxy.gateway.context import RequestContext
from proxy.gateway.errors import Forbidden
from proxy.gateway.spec import CorsSpec

DEFAULT_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
DEFAULT_HEADERS = ("authorization", "content-type", "x-api-key", "x-request-id")
# Always allowed by browsers without asking (Fetch's CORS-safelisted request headers).
_SAFELISTED = frozenset({"accept", "accept-language", "content-language", "content-type"})
_ORIGIN = re.compile(r"^https?://(\*\.)?[a-z0-9.\-\[\]:]+$")
_VARY = (b"vary", b"Origin")

log = logging.getLogger("apigw.cors")


def _header_list(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.strip().lower() for v in values if v.strip())


class CorsPolicy:
    __slots__ = (
        "any_origin",
        "origins",
        "suffixes",
        "methods",
        "any_header",
        "headers",
        "credentials",
        "_preflight",
        "_actual",
        "_vary",
    )

    def __init__(self, spec: CorsSpec, route_methods: Iterable[str] = (), *, strict: bool = True) -> None:
        """``strict=False`` (the data plane, compiling what is already stored): a rule validation
        now refuses is made safe instead of taking the route down."""
        origins = [str(o).strip().lower().rstrip("/") for o in spec.get("origins") or () if str(o).strip()]
        if not origins:
            raise ValueError("CORS needs at least one origin (or '*')")
        self.any_origin = "*" in origins
        credentials = bool(spec.get("credentials"))
        if self.any_origin and credentials:
            # Any origin with credentials means any site may act with the user's cookies: browsers
            # refuse the literal "*" with credentials, and echoing every origin would defeat it.
            if strict:
                raise ValueError("CORS with credentials needs its origins listed: '*' would let any site use them")
            log.error("CORS: '*' with credentials is not served; answering without credentials")
            credentials = False
        exact, suffixes = set(), []
        for origin in origins:
            if origin == "*":
                continue
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"CORS origin {origin!r} must look like https://app.example.com or https://*.example.com"
                )
            if "://*." in origin:
                scheme, _, domain = origin.partition("://*")
                suffixes.append((scheme + "://", domain))  # domain keeps its leading dot
            else:
                exact.add(origin)
        self.origins = frozenset(exact)
        self.suffixes = tuple(suffixes)
        methods = [str(m).strip().upper() for m in spec.get("methods") or () if str(m).strip()]
        self.methods = frozenset(methods or [m.upper() for m in route_methods] or DEFAULT_METHODS)
        headers = _header_list(spec.get("headers") or DEFAULT_HEADERS)
        self.any_header = "*" in headers
        self.headers = (headers - {"*"}) | _SAFELISTED
        self.credentials = credentials
        expose = ", ".join(sorted(_header_list(spec.get("expose_headers") or ())))
        max_age = int(spec.get("max_age", 600))
        if max_age < 0:
            raise ValueError("CORS max_age must not be negative")
        self._preflight = [
            (b"access-control-allow-methods", ", ".join(sorted(self.methods)).encode()),
            (b"access-control-max-age", str(max_age).encode()),
        ]
        self._actual: list[tuple[bytes, bytes]] = []
        if self.credentials:
            self._preflight.append((b"access-control-allow-credentials", b"true"))
            self._actual.append((b"access-control-allow-credentials", b"true"))
        if expose:
            self._actual.append((b"access-control-expose-headers", expose.encode()))
        # "*" is only a literal answer without credentials; otherwise the origin is echoed and
        # the answer depends on it, which shared caches must know.
        self._vary = not (self.any_origin and not self.credentials)

    def allows(self, origin: str) -> bool:
        if self.any_origin:
            return True
        origin = origin.lower()
        if origin in self.origins:
            return True
        return any(
            origin.startswith(s) and origin.endswith(d) and len(origin) > len(s) + len(d) for s, d in self.suffixes
        )

    def _allow_origin(self, origin: str) -> tuple[bytes, bytes]:
        value = "*" if self.any_origin and not self.credentials else origin
        return (b"access-control-allow-origin", value.encode("latin-1"))

    def preflight(self, ctx: RequestContext, method: str) -> list[tuple[bytes, bytes]]:
        """The headers of the 204 answer to a preflight, or Forbidden."""
        origin = ctx.header("origin") or ""
        if not self.allows(origin):
            raise Forbidden("This origin may not call the API from a browser.", code="cors_origin_not_allowed")
        if method not in self.methods:
            raise Forbidden(f"Browsers may not send {method} to this API.", code="cors_method_not_allowed")
        requested = ctx.header("access-control-request-headers") or ""
        names = _header_list(requested.split(","))
        if not self.any_header and not names <= self.headers:
            refused = ", ".join(sorted(names - self.headers))
            raise Forbidden(f"Browsers may not send these headers: {refused}.", code="cors_headers_not_allowed")
        headers = [self._allow_origin(origin), *self._preflight]
        if names:
            allowed = requested if self.any_header else ", ".join(sorted(names))
            headers.append((b"access-control-allow-headers", allowed.encode("latin-1")))
        if self._vary:
            headers.append((b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"))
        return headers

    def response_headers(self, ctx: RequestContext) -> list[tuple[bytes, bytes]]:
        """CORS headers for an actual (non-preflight) request."""
        origin = ctx.header("origin")
        headers = [_VARY] if self._vary else []
        if origin is not None and self.allows(origin):
            headers.append(self._allow_origin(origin))
            headers.extend(self._actual)
        return headers


def preflight_method(ctx: RequestContext) -> str | None:
    """The method a CORS preflight announces, or None if the request is not a preflight."""
    if ctx.method != "OPTIONS" or "origin" not in ctx.headers:
        return None
    values = ctx.headers.get("access-control-request-method")
    return values[0].strip().upper() if values else None
