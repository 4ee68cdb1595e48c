"""A route's traffic policy, compiled once per snapshot from the route's spec: which upstream
(rules by header or partner), timeouts, retries, body limit, cache, CORS, IP rules, header
transforms and WebSocket limits. A route that sets none of them shares ``DEFAULT`` and costs a dict lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.gateway.balancer import Upstream
from proxy.gateway.cache import CachePolicy
from proxy.gateway.context import RequestContext
from proxy.gateway.cors import CorsPolicy
from proxy.gateway.iprules import IpRules
from proxy.gateway.retry import RetryPolicy
from proxy.gateway.socketpolicy import DEFAULT_SOCKET_POLICY, SocketPolicy
from proxy.gateway.spec import RouteSpec
from proxy.gateway.transforms import HeaderTransform


@dataclass(frozen=True, slots=True)
class UpstreamRule:
    """Send matching requests to another upstream, e.g. ``X-API-Version: 2`` to ``v2`` or the
    beta partners to the canary. Every condition given must hold."""

    upstream: str
    header: str  # lower-case; "" when the rule does not look at a header
    values: frozenset[str] | None  # None: the header only has to be present
    partners: frozenset[str]  # partner slugs; empty: any caller

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> UpstreamRule:
        if not isinstance(spec, Mapping) or not spec.get("upstream"):
            raise ValueError("an upstream rule needs an upstream")
        unknown = set(spec) - {"upstream", "header", "value", "values", "partner", "partners"}
        if unknown:
            raise ValueError(f"unknown upstream rule keys: {', '.join(sorted(unknown))}")
        header = str(spec.get("header") or "").strip().lower()
        raw_values = spec.get("values") if "values" in spec else spec.get("value")
        values = None
        if raw_values is not None:
            values = frozenset(str(v) for v in (raw_values if isinstance(raw_values, list) else [raw_values]))
        raw_partners = spec.get("partners") if "partners" in spec else spec.get("partner")
        partners = frozenset(
            str(p) for p in (raw_partners if isinstance(raw_partners, list) else [raw_partners] if raw_partners else [])
        )
        if values is not None and not header:
            raise ValueError("an upstream rule with a value needs a header")
        if not header and not partners:
            raise ValueError("an upstream rule needs a header or partners")
        return cls(str(spec["upstream"]), header, values, partners)

    def applies(self, ctx: RequestContext, partner: str | None) -> bool:
        if self.partners and partner not in self.partners:
            return False
        if self.header:
            found = ctx.headers.get(self.header)
            if not found:
                return False
            if self.values is not None and not any(v.strip() in self.values for v in found):
                return False
        return True


def _positive(value: Any, name: str) -> float | None:
    if value is None:
        return None
    number = float(value)
    if number <= 0:
        raise ValueError(f"{name} must be positive")
    return number


class TrafficPolicy:
    __slots__ = (
        "upstream_rules",
        "connect_timeout",
        "read_timeout",
        "total_timeout",
        "retry",
        "max_body_bytes",
        "cache",
        "cors",
        "ip_rules",
        "request_transform",
        "response_transform",
        "socket",
    )

    def __init__(self, spec: RouteSpec) -> None:
        self.upstream_rules = tuple(UpstreamRule.from_spec(r) for r in spec.get("upstream_rules") or ())
        timeouts = spec.get("timeouts") or {}
        self.connect_timeout = _positive(timeouts.get("connect"), "the connect timeout")
        self.read_timeout = _positive(timeouts.get("read"), "the read timeout")
        self.total_timeout = _positive(timeouts.get("total"), "the total timeout")
        retries = int(spec.get("retries", 2))
        if retries < 0:
            raise ValueError("retries must not be negative")
        self.retry = RetryPolicy(retries, frozenset(int(s) for s in spec.get("retry_statuses") or ()))
        limit = spec.get("max_body_bytes")
        self.max_body_bytes: int | None = int(limit) if limit is not None else None
        if self.max_body_bytes is not None and self.max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        rule_headers = [r.header for r in self.upstream_rules if r.header]
        self.cache = CachePolicy.from_spec(spec.get("cache"), rule_headers)
        cors = spec.get("cors")
        self.cors = CorsPolicy(cors, spec.get("methods") or (), strict=False) if cors and cors.get("origins") else None
        rules = IpRules(spec.get("ip_allow") or (), spec.get("ip_deny") or ())
        self.ip_rules = rules if rules else None
        request = HeaderTransform(spec.get("request_transform"), "request_transform")
        response = HeaderTransform(spec.get("response_transform"), "response_transform")
        self.request_transform = request if request else None
        self.response_transform = response if response else None
        ws = spec.get("websocket")
        self.socket = SocketPolicy.from_spec(ws) if ws else DEFAULT_SOCKET_POLICY

    def upstream_for(self, default: str | None, ctx: RequestContext, partner: str | None) -> str | None:
        for rule in self.upstream_rules:
            if rule.applies(ctx, partner):
                return rule.upstream
        return default


DEFAULT = TrafficPolicy({})


def hash_value(upstream: Upstream, ctx: RequestContext) -> str | None:
    """What a consistent-hash upstream hashes for this request (None: fall back to round-robin)."""
    if upstream.algorithm != "consistent_hash":
        return None
    how = upstream.hash_on
    identity = ctx.identity
    if how == "partner":
        return identity.partner.slug if identity is not None else None
    if how == "key":
        if identity is None:
            return None
        return identity.key.prefix if identity.key is not None else f"partner:{identity.partner.slug}"
    if how == "ip":
        return ctx.client_ip or None
    values = ctx.headers.get(upstream.hash_header)
    return values[0] if values else None
