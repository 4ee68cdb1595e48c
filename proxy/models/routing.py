"""Upstreams, their targets, and routes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from proxy.gateway.balancer import ALGORITHMS
from proxy.gateway.balancer import Target as CompiledTarget
from proxy.gateway.balancer import Upstream as CompiledUpstream
from proxy.gateway.cache import CachePolicy
from proxy.gateway.cors import CorsPolicy
from proxy.gateway.iprules import parse_networks
from proxy.gateway.policy import UpstreamRule
from proxy.gateway.routing import MATCH_TYPES, PATH_TYPES, PROTOCOLS, RouteConfigError, normalise_prefix
from proxy.gateway.routing import Route as CompiledRoute
from proxy.gateway.spec import RouteSpec, TargetSpec, UpstreamSpec
from proxy.gateway.transforms import HeaderTransform


def optional_seconds(help_text: str) -> models.FloatField:
    """A timeout that may be left empty to fall back to a wider default."""
    return models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.001)], help_text=help_text)


def validate_target_url(value: str) -> None:
    try:
        CompiledTarget.parse(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    # Credentials in a target URL would be shown in admin, listed by the API, written into
    # config exports and access logs. Upstream credentials belong in a route's header transform.
    try:
        parts = urlsplit(value)
    except ValueError:
        return
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValidationError(
            "A target URL must not carry credentials (user:password@); "
            "set them as a request header of the route instead."
        )


def validate_networks(value: Any) -> None:
    """A JSON list of CIDRs (IP rules of routes and partners)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError('Enter a JSON list of CIDRs, e.g. ["203.0.113.0/24", "2001:db8::/32"].')
    try:
        parse_networks(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def validate_statuses(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, int) and 100 <= v <= 599 for v in value):
        raise ValidationError("Enter a JSON list of HTTP status codes, e.g. [502, 503, 504].")


def default_failure_statuses() -> list[int]:
    return [502, 503, 504]


def default_health_statuses() -> list[int]:
    return [200]


class Upstream(models.Model):
    in_snapshot = True  # changes bump the config version (proxy/signals.py)

    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    connect_timeout = optional_seconds("Seconds; empty uses GATEWAY_CONNECT_TIMEOUT.")
    read_timeout = optional_seconds("Seconds between bytes of the response; empty uses GATEWAY_READ_TIMEOUT.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    # -- load balancing (proxy/gateway/balancer.py) --
    ALGORITHM_CHOICES = [
        ("round_robin", "Round robin (weighted; canary by weight)"),
        ("least_requests", "Least outstanding requests (weighted)"),
        ("consistent_hash", "Consistent hash (a caller sticks to one target)"),
    ]
    HASH_ON_CHOICES = [("partner", "Partner"), ("key", "API key"), ("ip", "Client IP"), ("header", "A request header")]
    algorithm = models.CharField(max_length=20, choices=ALGORITHM_CHOICES, default="round_robin")
    hash_on = models.CharField(
        max_length=10, choices=HASH_ON_CHOICES, default="partner", help_text="Consistent hash only: what to hash."
    )
    hash_header = models.CharField(max_length=100, blank=True, help_text="The header to hash when hashing on a header.")
    # -- passive health: the circuit breaker (proxy/gateway/breaker.py) --
    failure_threshold = models.PositiveIntegerField(
        default=5,
        help_text="Failures in a row (connection errors, timeouts, failure statuses) that eject a target "
        "on every gateway instance; 0 turns passive health checks off.",
    )
    failure_window = models.FloatField(
        default=10.0, validators=[MinValueValidator(0.001)], help_text="Seconds the run of failures may span."
    )
    ejection_seconds = models.FloatField(
        default=10.0,
        validators=[MinValueValidator(0.001)],
        help_text="First ejection; doubled each time the half-open probe fails.",
    )
    max_ejection_seconds = models.FloatField(default=300.0, validators=[MinValueValidator(0.001)])
    failure_statuses = models.JSONField(
        default=default_failure_statuses,
        blank=True,
        validators=[validate_statuses],
        help_text="Upstream statuses that count as failures.",
    )
    # -- active health checks (proxy/gateway/probes.py) --
    health_check_path = models.CharField(
        max_length=300, blank=True, help_text="GET this path on every target periodically, e.g. /healthz; empty: off."
    )
    health_check_interval = models.FloatField(default=5.0, validators=[MinValueValidator(0.1)])
    health_check_timeout = models.FloatField(default=2.0, validators=[MinValueValidator(0.001)])
    health_check_statuses = models.JSONField(
        default=default_health_statuses, blank=True, validators=[validate_statuses], help_text="Statuses that pass."
    )
    healthy_threshold = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1)], help_text="Passing checks in a row that bring a target back."
    )
    unhealthy_threshold = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1)], help_text="Failing checks in a row that take a target out."
    )
    # -- retry budget (proxy/gateway/retry.py) --
    retry_budget_percent = models.PositiveSmallIntegerField(
        default=20, help_text="Retries allowed per 100 requests over the last 10 s (per gateway instance)."
    )
    retry_budget_per_second = models.PositiveSmallIntegerField(
        default=5, help_text="Retries allowed per second on top of the percentage (low-traffic upstreams)."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def snapshot_spec(self, targets: list[TargetSpec]) -> UpstreamSpec:
        """The plain description the data plane compiles (see proxy/snapshot_builder.py)."""
        return {
            "name": self.name,
            "targets": targets,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "algorithm": self.algorithm,
            "hash_on": self.hash_on,
            "hash_header": self.hash_header,
            "breaker": {
                "threshold": self.failure_threshold,
                "window": self.failure_window,
                "ejection": self.ejection_seconds,
                "max_ejection": self.max_ejection_seconds,
                "statuses": self.failure_statuses,
            },
            "health_check": {
                "path": self.health_check_path,
                "interval": self.health_check_interval,
                "timeout": self.health_check_timeout,
                "statuses": self.health_check_statuses,
                "healthy": self.healthy_threshold,
                "unhealthy": self.unhealthy_threshold,
            }
            if self.health_check_path
            else None,
            "retry_budget": {"ratio": self.retry_budget_percent / 100, "per_second": self.retry_budget_per_second},
        }

    def clean(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValidationError({"algorithm": f"Choose one of {', '.join(ALGORITHMS)}."})
        if self.algorithm == "consistent_hash" and self.hash_on == "header" and not self.hash_header.strip():
            raise ValidationError({"hash_header": "Name the header to hash."})
        if self.max_ejection_seconds < self.ejection_seconds:
            raise ValidationError({"max_ejection_seconds": "Must be at least the first ejection."})
        if self.health_check_path and not self.health_check_path.startswith("/"):
            raise ValidationError({"health_check_path": "Must start with '/'."})
        try:
            CompiledUpstream(self.snapshot_spec([]))  # what the admin accepts, the gateway compiles
        except (ValueError, TypeError) as exc:
            raise ValidationError(str(exc)) from None


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
    # Bounded explicitly: PostgreSQL's integer range would be the limit there, SQLite has none.
    priority = models.IntegerField(
        default=0,
        validators=[MinValueValidator(-1_000_000), MaxValueValidator(1_000_000)],
        help_text="Higher wins when several routes match.",
    )
    strip_prefix = models.BooleanField(default=False, help_text="Drop the matched prefix before forwarding.")
    rewrite = models.CharField(
        max_length=500, blank=True, help_text="Upstream path template, e.g. /v2/items/{id} or /legacy{path}."
    )
    preserve_host = models.BooleanField(default=False, help_text="Send the client's Host header upstream.")
    # How the route takes what the canonical path flags (proxy/gateway/canonical.py): by default
    # anything an upstream might read as another path is refused.
    encoded_slashes = models.CharField(
        max_length=10,
        choices=[("reject", "Reject (400)"), ("keep", "Keep encoded: match and forward %2F as it is")],
        default="reject",
        help_text="Paths with an encoded slash (%2F).",
    )
    path_parameters = models.BooleanField(
        default=False, help_text="Accept ';' parameters in path segments (e.g. ;jsessionid=...); refused otherwise."
    )
    case_insensitive = models.BooleanField(
        default=False, help_text="Match the path ignoring case (prefix and exact routes; regex routes use (?i))."
    )
    protocols = models.JSONField(
        default=list, blank=True, help_text='["http"], ["websocket"] or both; empty means http.'
    )
    product = models.ForeignKey(
        "proxy.ApiProduct",
        related_name="routes",
        null=True,
        blank=True,
        # Not SET_NULL: a route without a product admits every active partner, so deleting a
        # product would quietly widen access. Move or delete its routes first.
        on_delete=models.PROTECT,
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
    # -- traffic policy (proxy/gateway/policy.py) --
    upstream_rules = models.JSONField(
        default=list,
        blank=True,
        help_text="Send some requests to another upstream; the first rule that applies wins, e.g. "
        '[{"header": "X-API-Version", "value": "2", "upstream": "appliances-v2"}, '
        '{"partners": ["beta-co"], "upstream": "appliances-canary"}].',
    )
    connect_timeout = optional_seconds("Seconds; empty uses the upstream's.")
    read_timeout = optional_seconds("Seconds between bytes of the response; empty uses the upstream's.")
    total_timeout = optional_seconds(
        "Seconds for every attempt up to the last byte of the response; empty: no limit (keeps event streams open)."
    )
    retries = models.PositiveSmallIntegerField(
        default=2,
        help_text="Further attempts, on other targets, for idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE) "
        "after a connection failure or a retry status. Bodies over GATEWAY_RETRY_BUFFER_BYTES are not retried.",
    )
    retry_statuses = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_statuses],
        help_text="Upstream statuses that are retried too, e.g. [503].",
    )
    max_body_bytes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Request body limit in bytes; empty uses GATEWAY_MAX_BODY_BYTES."
    )
    cache_ttl = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Cache GET responses in Redis for this many seconds (less if the upstream says so); empty: off.",
    )
    cache_headers = models.JSONField(
        default=list,
        blank=True,
        help_text='Request headers in the cache key besides method, path, query and partner, e.g. ["Accept", '
        '"Accept-Language"]: list every header the upstream varies on.',
    )
    cache_max_bytes = models.PositiveIntegerField(
        default=1024 * 1024, validators=[MinValueValidator(1)], help_text="Larger responses are not cached."
    )
    cors_origins = models.JSONField(
        default=list,
        blank=True,
        help_text='Browser origins allowed to call, e.g. ["https://app.example.com", "https://*.example.com"] '
        'or ["*"]; empty: no CORS (preflights go to the upstream).',
    )
    cors_methods = models.JSONField(default=list, blank=True, help_text="Empty: the route's methods, else all.")
    cors_headers = models.JSONField(
        default=list,
        blank=True,
        help_text="Request headers browsers may send; empty: Authorization, Content-Type, X-API-Key, X-Request-ID; "
        '["*"]: any.',
    )
    cors_expose_headers = models.JSONField(default=list, blank=True, help_text="Response headers pages may read.")
    cors_credentials = models.BooleanField(default=False, help_text="Allow cookies / HTTP auth from the browser.")
    cors_max_age = models.PositiveIntegerField(default=600, help_text="Seconds browsers may cache a preflight.")
    ip_allow = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_networks],
        help_text='CIDRs; empty allows any, e.g. ["203.0.113.0/24"].',
    )
    ip_deny = models.JSONField(
        default=list, blank=True, validators=[validate_networks], help_text="CIDRs refused (403 ip_denied)."
    )
    request_transform = models.JSONField(
        default=dict,
        blank=True,
        help_text='Headers to the upstream: {"remove": ["X-Debug"], "rename": {"X-Old": "X-New"}, '
        '"set": {"X-Env": "prod"}, "add": {"X-Tag": "a"}}.',
    )
    response_transform = models.JSONField(default=dict, blank=True, help_text="Headers to the client, same form.")

    class Meta:
        ordering = ["-priority", "name"]

    def __str__(self) -> str:
        return self.name

    def snapshot_spec(self) -> RouteSpec:
        """The plain description the data plane compiles (see proxy/snapshot_builder.py)."""
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
            "encoded_slashes": self.encoded_slashes,
            "path_parameters": self.path_parameters,
            "case_insensitive": self.case_insensitive,
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
            **self.traffic_spec(),
        }

    def traffic_spec(self) -> RouteSpec:
        """The traffic policy part of the spec (proxy/gateway/policy.py). JSON fields go as they
        are: clean() checks their shapes, and the snapshot is only ever read."""
        return {
            "upstream_rules": self.upstream_rules,
            "timeouts": {"connect": self.connect_timeout, "read": self.read_timeout, "total": self.total_timeout},
            "retries": self.retries,
            "retry_statuses": self.retry_statuses,
            "max_body_bytes": self.max_body_bytes,
            "cache": {"ttl": self.cache_ttl, "headers": self.cache_headers, "max_bytes": self.cache_max_bytes}
            if self.cache_ttl
            else None,
            "cors": {
                "origins": self.cors_origins,
                "methods": self.cors_methods,
                "headers": self.cors_headers,
                "expose_headers": self.cors_expose_headers,
                "credentials": self.cors_credentials,
                "max_age": self.cors_max_age,
            }
            if self.cors_origins
            else None,
            "ip_allow": self.ip_allow,
            "ip_deny": self.ip_deny,
            "request_transform": self.request_transform,
            "response_transform": self.response_transform,
        }

    def clean(self) -> None:
        self.clean_definition()
        self._refuse_conflicts()

    def clean_definition(self) -> None:
        """Everything ``clean()`` checks but the conflicts with other routes: the route on its
        own (a config apply judges conflicts once every route of its file is in place)."""
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
        self._clean_traffic()

    def _clean_traffic(self) -> None:
        """Each part of the traffic policy through its data-plane compiler, errors on its field."""
        for field in ("cache_headers", "cors_origins", "cors_methods", "cors_headers", "cors_expose_headers"):
            _list_of_strings(getattr(self, field), field)
        for field in ("request_transform", "response_transform"):
            value = getattr(self, field)
            if not isinstance(value, dict):
                raise ValidationError({field: 'Enter a JSON object, e.g. {"set": {"X-Env": "prod"}}.'})
            _compiles(field, lambda value=value, field=field: HeaderTransform(value, field))
        spec = self.traffic_spec()
        if spec["cache"] is not None:
            _compiles("cache_headers", lambda: CachePolicy.from_spec(spec["cache"]))
        if spec["cors"] is not None:
            _compiles("cors_origins", lambda: CorsPolicy(spec["cors"], self.methods))
        if not isinstance(self.upstream_rules, list):
            raise ValidationError({"upstream_rules": "Enter a JSON list of rules."})
        names = set()
        for rule in self.upstream_rules:
            compiled = _compiles("upstream_rules", lambda rule=rule: UpstreamRule.from_spec(rule))
            names.add(compiled.upstream)
        known = set(Upstream.objects.filter(name__in=names).values_list("name", flat=True)) if names else set()
        missing = names - known
        if missing:
            raise ValidationError({"upstream_rules": f"Unknown upstreams: {', '.join(sorted(missing))}."})

    def _refuse_conflicts(self) -> None:
        """Two enabled routes that match exactly the same requests at the same priority make the
        winner depend on names: refuse the second one instead."""
        if not self.enabled:
            return
        same = Route.objects.filter(
            enabled=True, path_type=self.path_type, path=self.path, priority=self.priority
        ).exclude(pk=self.pk)
        other = self.conflicting(same)
        if other is not None:
            raise self.conflict_error(other)

    def conflicting(self, others: Iterable[Route]) -> Route | None:
        """The first of ``others`` (enabled routes, in the table's order) that matches exactly
        the requests this route matches at its priority."""
        if not self.enabled:
            return None
        for other in others:
            if (
                other.pk != self.pk
                and other.enabled
                and other.path_type == self.path_type
                and other.path == self.path
                and other.priority == self.priority
                and sorted(other.hosts) == sorted(self.hosts)
                and _overlap(other.methods, self.methods)
                and _overlap(other.protocols or ["http"], self.protocols or ["http"])
                and other.headers == self.headers
                and other.query == self.query
            ):
                return other
        return None

    @staticmethod
    def conflict_error(other: Route) -> ValidationError:
        return ValidationError(
            f"Route {other.name!r} already matches the same hosts, path, methods and matchers "
            "at this priority. Change the priority or make the matchers differ."
        )


def _compiles(field: str, compile_: Any) -> Any:
    try:
        return compile_()
    except (ValueError, TypeError) as exc:
        raise ValidationError({field: str(exc)}) from None


def _overlap(a: list[str], b: list[str]) -> bool:
    return not a or not b or bool({x.upper() for x in a} & {x.upper() for x in b})
