"""The configuration snapshot's shape: the plain data the control plane builds
(proxy/snapshot_builder.py, the models' ``snapshot_spec``) and the data plane compiles
(snapshot.Snapshot.compile). Keys are optional (``total=False``) because the data plane also
compiles hand-written snapshots (tests, benchmarks) and treats a missing key as its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict


class TargetSpec(TypedDict, total=False):
    url: str
    weight: int


class BreakerSpec(TypedDict, total=False):
    threshold: int
    window: float
    ejection: float
    max_ejection: float
    statuses: list[int]


class HealthCheckSpec(TypedDict, total=False):
    path: str
    interval: float
    timeout: float
    statuses: list[int]
    healthy: int
    unhealthy: int


class RetryBudgetSpec(TypedDict, total=False):
    ratio: float
    per_second: float


class UpstreamSpec(TypedDict, total=False):
    name: str
    targets: list[TargetSpec]
    connect_timeout: float | None
    read_timeout: float | None
    algorithm: str
    hash_on: str
    hash_header: str
    breaker: BreakerSpec
    health_check: HealthCheckSpec | None
    retry_budget: RetryBudgetSpec


class MatcherSpec(TypedDict, total=False):
    name: str
    match: str
    value: str


class SocketSpec(TypedDict, total=False):
    max_message_bytes: int | None
    messages_per_second: int | None
    key_messages_per_second: int | None
    rate_action: str
    max_per_key: int | None
    max_per_partner: int | None


class CacheSpec(TypedDict, total=False):
    ttl: float
    headers: list[str]
    max_bytes: int | None


class CorsSpec(TypedDict, total=False):
    origins: list[str]
    methods: list[str]
    headers: list[str]
    expose_headers: list[str]
    credentials: bool
    max_age: int


class TransformSpec(TypedDict, total=False):
    remove: list[str]
    rename: dict[str, str]
    set: dict[str, str]
    add: dict[str, str]


class TimeoutsSpec(TypedDict, total=False):
    connect: float | None
    read: float | None
    total: float | None


class RouteSpec(TypedDict, total=False):
    id: int | None
    name: str
    upstream: str | None
    hosts: list[str]
    path_type: str
    path: str
    methods: list[str]
    headers: list[MatcherSpec]
    query: list[MatcherSpec]
    priority: int
    strip_prefix: bool
    rewrite: str
    preserve_host: bool
    encoded_slashes: str  # "reject" or "keep"
    path_parameters: bool
    case_insensitive: bool
    protocols: list[str]
    product: str | None
    auth: str
    allow_query_key: bool
    limits: dict[str, int]
    websocket: SocketSpec
    # The traffic policy (policy.py). Upstream rules are checked by their compiler.
    upstream_rules: list[Mapping[str, Any]]
    timeouts: TimeoutsSpec
    retries: int
    retry_statuses: list[int]
    max_body_bytes: int | None
    cache: CacheSpec | None
    cors: CorsSpec | None
    ip_allow: list[str]
    ip_deny: list[str]
    request_transform: TransformSpec | None
    response_transform: TransformSpec | None


class PlanSpec(TypedDict, total=False):
    slug: str
    scope: str
    limits: dict[str, int]
    quotas: dict[str, int]


class PartnerSpec(TypedDict, total=False):
    id: int
    slug: str
    status: str
    subscriptions: dict[str, str]  # product slug → plan slug
    ip_allow: list[str]
    ip_deny: list[str]


class KeySpec(TypedDict, total=False):
    id: int
    prefix: str
    hash: str
    partner: int
    products: list[str]
    expires: float | None


class IssuerSpec(TypedDict, total=False):
    name: str
    issuer: str
    jwks_url: str
    audience: str
    partner_claim: str
    algorithms: list[str] | None
    leeway: int


class SnapshotData(TypedDict, total=False):
    upstreams: list[UpstreamSpec]
    routes: list[RouteSpec]
    plans: list[PlanSpec]
    partners: list[PartnerSpec]
    keys: list[KeySpec]
    jwt_issuers: list[IssuerSpec]
