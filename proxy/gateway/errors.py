"""Every answer the gateway gives on its own behalf, as one exception hierarchy.

    GatewayError
    ├── BadRequest              400 bad_request / bad_path / encoded_slash / duplicate_host / bad_version
    ├── Unauthorized            401 unauthorized (carries WWW-Authenticate)
    ├── Forbidden               403 forbidden / ip_denied / cors_origin_not_allowed /
    │                               cors_method_not_allowed / cors_headers_not_allowed
    ├── RouteNotFound           404 route_not_found
    ├── MethodNotAllowed        405 method_not_allowed (carries Allow; TRACE/TRACK/CONNECT)
    ├── RequestTimeout          408 request_timeout (a body that stalled)
    ├── PayloadTooLarge         413 payload_too_large
    ├── TooManyRequests         429 rate_limited / quota_exceeded (carries Retry-After)
    ├── BadGateway              502 upstream_unavailable
    ├── ServiceUnavailable      503 service_unavailable / limiter_unavailable / not_ready /
    │                               no_upstream / no_healthy_upstream (every target ejected;
    │                               carries Retry-After) / upstream_busy (no free slot in time)
    └── GatewayTimeout          504 upstream_timeout

Bodies are tiny and stable: ``{"error": {"code", "message", "request_id"}}``. Clients branch on
``code``; ``message`` is for humans and may change.
"""

from __future__ import annotations

import json


class GatewayError(Exception):
    status_code = 500
    code = "internal_error"
    detail = "The gateway failed to handle the request."

    def __init__(
        self, detail: str | None = None, *, code: str | None = None, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.detail = detail or self.detail
        if code is not None:
            self.code = code
        self.headers = headers or []
        super().__init__(self.detail)

    def body(self, request_id: str) -> bytes:
        return json.dumps(
            {"error": {"code": self.code, "message": self.detail, "request_id": request_id}},
            separators=(",", ":"),
        ).encode()


class BadRequest(GatewayError):
    status_code = 400
    code = "bad_request"
    detail = "The request is malformed."


class Unauthorized(GatewayError):
    status_code = 401
    code = "unauthorized"
    detail = "A valid API key or bearer token is required."


class Forbidden(GatewayError):
    status_code = 403
    code = "forbidden"
    detail = "The credentials are not allowed to use this API."


class RouteNotFound(GatewayError):
    status_code = 404
    code = "route_not_found"
    detail = "No API is published at this address."


class MethodNotAllowed(GatewayError):
    status_code = 405
    code = "method_not_allowed"
    detail = "The method is not allowed for this address."


class PayloadTooLarge(GatewayError):
    status_code = 413
    code = "payload_too_large"
    detail = "The request body is larger than allowed."


class RequestTimeout(GatewayError):
    status_code = 408
    code = "request_timeout"
    detail = "The request body did not arrive in time."


class TooManyRequests(GatewayError):
    status_code = 429
    code = "rate_limited"
    detail = "Too many requests."


class BadGateway(GatewayError):
    status_code = 502
    code = "upstream_unavailable"
    detail = "The upstream service could not be reached."


class ServiceUnavailable(GatewayError):
    status_code = 503
    code = "service_unavailable"
    detail = "The service is temporarily unavailable."


class GatewayTimeout(GatewayError):
    status_code = 504
    code = "upstream_timeout"
    detail = "The upstream service did not answer in time."
