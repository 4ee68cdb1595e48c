"""Upstreams, their targets, and routes."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from proxy.gateway.balancer import Target as CompiledTarget
from proxy.gateway.routing import MATCH_TYPES, PATH_TYPES, PROTOCOLS, RouteConfigError, normalise_prefix
from proxy.gateway.routing import Route as CompiledRoute


def validate_target_url(value: str) -> None:
    try:
        CompiledTarget.parse(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class Upstream(models.Model):
    in_snapshot = True  # changes bump the config version (proxy/signals.py)

    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    connect_timeout = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text="Seconds; empty uses GATEWAY_CONNECT_TIMEOUT.",
    )
    read_timeout = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text="Seconds between bytes of the response; empty uses GATEWAY_READ_TIMEOUT.",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Target(models.Model):
    in_snapshot = True

    upstream = models.ForeignKey(Upstream, related_name="targets", on_delete=models.CASCADE)
    url = models.CharField(
        max_length=300, validators=[validate_target_url], help_text="http(s)://host:port of one server of the upstream."
    )
    weight = models.PositiveIntegerField(default=1, help_text="Share of traffic; 0 drains the target.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["upstream", "url"]
        constraints = [models.UniqueConstraint(fields=["upstream", "url"], name="target_unique_url")]

    def __str__(self) -> str:
        return f"{self.url} (weight {self.weight})"


def _list_of_strings(value: Any, field: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError({field: 'Enter a JSON list of strings, e.g. ["GET", "POST"].'})


def _matchers(value: Any, field: str) -> None:
    example = '[{"name": "X-API-Version", "match": "exact", "value": "2"}]'
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValidationError({field: f"Enter a JSON list of matchers, e.g. {example}."})
    for matcher in value:
        unknown = set(matcher) - {"name", "match", "value"}
        if unknown:
            raise ValidationError({field: f"Unknown matcher keys: {', '.join(sorted(unknown))}."})
        if matcher.get("match", "exact") not in MATCH_TYPES:
            raise ValidationError({field: f"match must be one of {', '.join(MATCH_TYPES)}."})


class Route(models.Model):
    in_snapshot = True
    PATH_TYPE_CHOICES = [(t, t) for t in PATH_TYPES]
    AUTH_CHOICES = [
        ("key", "API key"),
        ("jwt", "JWT bearer token"),
        ("key_or_jwt", "API key or JWT"),
        ("public", "Public (no credentials; limited per client IP)"),
    ]

    name = models.SlugField(max_length=100, unique=True)
    upstream = models.ForeignKey(Upstream, related_name="routes", on_delete=models.PROTECT)
    hosts = models.JSONField(
        default=list, blank=True, help_text='Host names, e.g. ["api.example.com", "*.example.com"]; empty matches any.'
    )
    path_type = models.CharField(max_length=10, choices=PATH_TYPE_CHOICES, default="prefix")
    path = models.CharField(
        max_length=500,
        default="/",
        help_text="A path prefix, an exact path, or a regex with named groups such as ^/appliances/(?P<id>[^/]+)$.",
    )
    methods = models.JSONField(default=list, blank=True, help_text='e.g. ["GET", "POST"]; empty allows any.')
    headers = models.JSONField(
        default=list,
        blank=True,
        help_text='e.g. [{"name": "X-API-Version", "match": "exact", "value": "2"}]; '
        "match is exact, regex, present or absent.",
    )
    query = models.JSONField(default=list, blank=True, help_text="Query-parameter matchers, same form as headers.")
    priority = models.IntegerField(default=0, help_text="Higher wins when several routes match.")
    strip_prefix = models.BooleanField(default=False, help_text="Drop the matched prefix before forwarding.")
    rewrite = models.CharField(
        max_length=500, blank=True, help_text="Upstream path template, e.g. /v2/items/{id} or /legacy{path}."
    )
    preserve_host = models.BooleanField(default=False, help_text="Send the client's Host header upstream.")
    protocols = models.JSONField(
        default=list, blank=True, help_text='["http"], ["websocket"] or both; empty means http.'
    )
    product = models.ForeignKey(
        "proxy.ApiProduct",
        related_name="routes",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="Callers need a subscription to it.",
    )
    auth = models.CharField(max_length=12, choices=AUTH_CHOICES, default="key")
    allow_query_key = models.BooleanField(default=False, help_text="Also accept the key as ?api_key=…")
    limit_per_second = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Per caller (key, or client IP when public).",
    )
    limit_per_minute = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    limit_per_hour = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    # WebSocket routes (protocols contains "websocket"): limits inside the socket.
    WS_RATE_ACTIONS = [("close", "Close the socket (1008)"), ("drop", "Drop the message")]
    ws_max_message_bytes = models.PositiveIntegerField(
        default=1024 * 1024, validators=[MinValueValidator(1)], help_text="Larger messages close the socket with 1009."
    )
    ws_messages_per_second = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Per connection, client to upstream."
    )
    ws_key_messages_per_second = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Per API key over all its sockets on one gateway instance.",
    )
    ws_rate_action = models.CharField(max_length=5, choices=WS_RATE_ACTIONS, default="close")
    ws_max_connections_per_key = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Concurrent sockets, across all instances."
    )
    ws_max_connections_per_partner = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "name"]

    def __str__(self) -> str:
        return self.name

    def snapshot_spec(self) -> dict[str, Any]:
        """The plain description the data plane compiles (see proxy/snapshot.py)."""
        return {
            "id": self.pk,
            "name": self.name,
            "upstream": self.upstream.name if self.upstream_id else None,
            "hosts": list(self.hosts),
            "path_type": self.path_type,
            "path": self.path,
            "methods": [m.upper() for m in self.methods],
            "headers": list(self.headers),
            "query": list(self.query),
            "priority": self.priority,
            "strip_prefix": self.strip_prefix,
            "rewrite": self.rewrite,
            "preserve_host": self.preserve_host,
            "protocols": list(self.protocols) or ["http"],
            "product": self.product.slug if self.product is not None else None,
            "auth": self.auth,
            "allow_query_key": self.allow_query_key,
            "limits": {
                k: v
                for k, v in (
                    ("second", self.limit_per_second),
                    ("minute", self.limit_per_minute),
                    ("hour", self.limit_per_hour),
                )
                if v
            },
            "websocket": {
                "max_message_bytes": self.ws_max_message_bytes,
                "messages_per_second": self.ws_messages_per_second,
                "key_messages_per_second": self.ws_key_messages_per_second,
                "rate_action": self.ws_rate_action,
                "max_per_key": self.ws_max_connections_per_key,
                "max_per_partner": self.ws_max_connections_per_partner,
            },
        }

    def clean(self) -> None:
        for field in ("hosts", "methods", "protocols"):
            _list_of_strings(getattr(self, field), field)
        for field in ("headers", "query"):
            _matchers(getattr(self, field), field)
        self.methods = [m.strip().upper() for m in self.methods if m.strip()]
        self.hosts = [h.strip().lower() for h in self.hosts if h.strip()]
        if set(self.protocols) - set(PROTOCOLS):
            raise ValidationError({"protocols": f"Protocols are among {', '.join(PROTOCOLS)}."})
        if self.path_type == "prefix":
            self.path = normalise_prefix(self.path)
        try:
            # The data plane's compiler is the validator: what the admin accepts, the gateway serves.
            CompiledRoute(self.snapshot_spec())
        except RouteConfigError as exc:
            raise ValidationError({exc.field: str(exc).split(": ", 1)[-1]}) from None
        self._refuse_conflicts()

    def _refuse_conflicts(self) -> None:
        """Two enabled routes that match exactly the same requests at the same priority make the
        winner depend on names: refuse the second one instead."""
        if not self.enabled:
            return
        same = Route.objects.filter(
            enabled=True, path_type=self.path_type, path=self.path, priority=self.priority
        ).exclude(pk=self.pk)
        for other in same:
            if (
                sorted(other.hosts) == sorted(self.hosts)
                and _overlap(other.methods, self.methods)
                and _overlap(other.protocols or ["http"], self.protocols or ["http"])
                and other.headers == self.headers
                and other.query == self.query
            ):
                raise ValidationError(
                    f"Route {other.name!r} already matches the same hosts, path, methods and matchers "
                    "at this priority. Change the priority or make the matchers differ."
                )


def _overlap(a: list[str], b: list[str]) -> bool:
    return not a or not b or bool({x.upper() for x in a} & {x.upper() for x in b})
