"""``POST /api/admin/v1/explain``: how the gateway would handle a request (proxy/explain.py)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from django.conf import settings
from django.db import connections
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from adminapi.base import AdminAPIView
from proxy import configbus
from proxy.explain import ExplainRequest, explain
from proxy.gateway.config import GatewayConfig
from proxy.gateway.snapshot import Snapshot
from proxy.gateway.spec import RouteSpec, SnapshotData
from proxy.models import Route
from proxy.snapshot_builder import build_snapshot

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class ExplainInputSerializer(serializers.Serializer):
    method = serializers.CharField(max_length=20, default="GET", help_text="HTTP method, e.g. GET.")
    url = serializers.CharField(
        max_length=8192,
        help_text="Absolute URL (http://api.example.com/path?x=1) or a path (/path?x=1) with a Host header.",
    )
    headers = serializers.DictField(
        child=serializers.CharField(max_length=8192, allow_blank=True),
        required=False,
        default=dict,
        help_text="Request headers, name → value. Credentials are used to authenticate and never echoed.",
    )
    client_ip = serializers.IPAddressField(default="127.0.0.1", help_text="For limits on public routes.")
    protocol = serializers.ChoiceField(choices=["http", "websocket"], default="http")
    as_key = serializers.RegexField(
        r"^[a-z2-7]{8}$",
        required=False,
        allow_blank=True,
        help_text="Act as this API key (its prefix) without its secret.",
    )
    as_partner = serializers.SlugField(
        required=False, allow_blank=True, help_text="Act as this partner (a JWT caller) without a token."
    )

    def validate_method(self, value: str) -> str:
        if not _TOKEN.match(value):
            raise serializers.ValidationError("Not an HTTP method.")
        return value.upper()

    def validate_url(self, value: str) -> str:
        if not (value.startswith("/") or re.match(r"^(https?|wss?)://[^/?#\s]+", value)):
            raise serializers.ValidationError("Give an absolute URL (http://host/path) or a path starting with /.")
        if any(c in value for c in "\x00\r\n \t"):
            raise serializers.ValidationError("The URL may not contain spaces or control characters.")
        return value

    def validate_headers(self, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if not _TOKEN.match(name):
                raise serializers.ValidationError(f"{name!r} is not a header name.")
            if any(c in header for c in "\x00\r\n"):
                raise serializers.ValidationError(f"The value of {name} may not contain control characters.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("as_key") and attrs.get("as_partner"):
            raise serializers.ValidationError("Give as_key or as_partner, not both.")
        return attrs


# -- the answer's shape (documentation for the schema; the view returns proxy/explain.py's dict) ----
class _Verdict(serializers.Serializer):
    status = serializers.IntegerField(help_text="What the gateway would answer (200: it would forward).")
    code = serializers.CharField(help_text="forwarded, or the gateway's error code (route_not_found, ...).")
    message = serializers.CharField(allow_blank=True)
    phase = serializers.ChoiceField(choices=["match", "authenticate", "limit", "forward"])
    would_forward = serializers.BooleanField()


class _Request(serializers.Serializer):
    method = serializers.CharField()
    host = serializers.CharField(allow_blank=True)
    path = serializers.CharField()
    query = serializers.CharField(allow_blank=True)
    protocol = serializers.CharField()
    client_ip = serializers.CharField()
    headers = serializers.DictField(child=serializers.ListField(child=serializers.CharField(allow_blank=True)))


class _Check(serializers.Serializer):
    matcher = serializers.CharField(
        help_text="protocol, host, path, header:<name>, query:<name>, method, precedence or enabled."
    )
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class _RouteSummary(serializers.Serializer):
    name = serializers.CharField()
    id = serializers.IntegerField(allow_null=True)
    priority = serializers.IntegerField()
    path_type = serializers.CharField()
    path = serializers.CharField()
    hosts = serializers.ListField(child=serializers.CharField())
    methods = serializers.ListField(child=serializers.CharField())
    protocols = serializers.ListField(child=serializers.CharField())
    upstream = serializers.CharField(allow_null=True)


class _MatchedRoute(_RouteSummary):
    params = serializers.DictField(child=serializers.CharField(allow_blank=True))
    tail = serializers.CharField(allow_blank=True)
    upstream_path = serializers.CharField()


class _Miss(_RouteSummary):
    failed = _Check(many=True)


# inline: "required" is also an attribute of every DRF field.
_Auth = inline_serializer(
    "ExplainAuth",
    allow_null=True,
    fields={
        "required": serializers.ChoiceField(choices=["key", "jwt", "key_or_jwt", "public"]),
        "product": serializers.CharField(allow_null=True),
        "allow_query_key": serializers.BooleanField(),
        "credential": serializers.CharField(help_text="Where the request carries credentials (never their value)."),
        "simulated_as": serializers.CharField(allow_null=True),
        "ok": serializers.BooleanField(),
        "status": serializers.IntegerField(allow_null=True),
        "code": serializers.CharField(allow_null=True),
        "message": serializers.CharField(allow_null=True),
        "partner": serializers.CharField(allow_null=True),
        "key": serializers.CharField(allow_null=True, help_text="Key prefix."),
        "plan": serializers.CharField(allow_null=True),
        "method": serializers.CharField(allow_null=True),
    },
)


class _Limit(serializers.Serializer):
    name = serializers.CharField(help_text="plan:minute, route:second, plan:day, ...")
    kind = serializers.ChoiceField(choices=["rate", "quota"])
    period = serializers.CharField()
    limit = serializers.IntegerField()
    redis_key = serializers.CharField()
    used = serializers.IntegerField(allow_null=True)
    remaining = serializers.IntegerField(allow_null=True, help_text="Requests left now, before this one.")
    would_refuse = serializers.BooleanField(allow_null=True)
    reset_seconds = serializers.FloatField(allow_null=True)
    error = serializers.CharField(required=False)


class _Target(serializers.Serializer):
    url = serializers.CharField()
    weight = serializers.IntegerField()
    share = serializers.FloatField()


class _Upstream(serializers.Serializer):
    name = serializers.CharField(allow_null=True)
    target = serializers.CharField(allow_null=True)
    url = serializers.CharField(allow_null=True)
    targets = _Target(many=True)
    note = serializers.CharField()


class ExplainOutputSerializer(serializers.Serializer):
    snapshot_version = serializers.IntegerField()
    request = _Request()
    verdict = _Verdict()
    route = _MatchedRoute(allow_null=True)
    why = _Check(many=True, help_text="The matched route's matchers, each with why it passed.")
    nearest = _Miss(many=True, help_text="Routes that came closest, with the matchers that failed.")
    auth = _Auth
    limits = _Limit(many=True, help_text="Every limit that applies, read from Redis without counting.")
    upstream = _Upstream(allow_null=True)


class ExplainView(AdminAPIView):
    """Which route a request would match and why (and which matcher failed on the nearest others),
    the authentication it needs, each limit with what remains, and the upstream target; nothing
    is forwarded and no quota is consumed."""

    required_permissions = {"POST": ["proxy.view_route"]}

    @extend_schema(
        request=ExplainInputSerializer,
        responses={200: ExplainOutputSerializer},
        examples=[
            OpenApiExample(
                "A key-authenticated GET",
                request_only=True,
                value={
                    "method": "GET",
                    "url": "http://api.example.com/api/v1/appliances?limit=5",
                    "headers": {"X-API-Key": "gw_abcdefgh_..."},
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        params = ExplainInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        return Response(run(params.validated_data))


def committed_configuration() -> tuple[SnapshotData, list[RouteSpec]]:
    """The snapshot data the gateways load, and the disabled routes, read the way a gateway reads
    them: from a thread of its own, so on its own connection and from committed data only (and
    build_snapshot's connection housekeeping never touches the request's connection)."""

    def load() -> tuple[SnapshotData, list[RouteSpec]]:
        try:
            disabled = Route.objects.filter(enabled=False).select_related("upstream", "product")
            return build_snapshot(), [route.snapshot_spec() for route in disabled]
        finally:
            connections.close_all()  # this thread's connections only

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain") as pool:
        return pool.submit(load).result()


def run(data: dict[str, Any]) -> dict[str, Any]:
    """Explain against the committed configuration (what every gateway serves within a second)."""
    client = configbus.redis_client()
    try:
        version = int(client.get(configbus.keys().config_version) or 0)
    except (redis.RedisError, OSError):
        version = 0
    snapshot_data, disabled = committed_configuration()
    snapshot = Snapshot.compile(snapshot_data, version)
    request = ExplainRequest(
        method=data["method"],
        url=data["url"],
        headers=list(data.get("headers", {}).items()),
        client_ip=data["client_ip"],
        protocol=data["protocol"],
        as_key=data.get("as_key") or "",
        as_partner=data.get("as_partner") or "",
    )
    return explain(
        request,
        snapshot,
        client=client,
        config=GatewayConfig.from_settings(settings),
        disabled=disabled,
    )
