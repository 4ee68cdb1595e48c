"""Build the plain-data description of the configuration that the data plane compiles.

Runs in a worker thread of the gateway process (``ConfigStore`` calls it with
``asyncio.to_thread``) and in the control plane for ``explain``; it only reads. Revoked keys
are left out (so they are unknown to the gateway); expired ones stay in so the gateway can say
"expired" (403) instead of "invalid" (401).
"""

from __future__ import annotations

from django.db import close_old_connections, connection

from proxy.gateway.spec import KeySpec, PartnerSpec, SnapshotData, TargetSpec, UpstreamSpec
from proxy.models import ApiKey, JwtIssuer, Partner, Plan, Route, Subscription, Target, Upstream


def build_snapshot() -> SnapshotData:
    _close_stale()
    try:
        return {
            "upstreams": _upstreams(),
            "routes": [
                r.snapshot_spec() for r in Route.objects.filter(enabled=True).select_related("upstream", "product")
            ],
            "plans": [
                {"slug": p.slug, "scope": p.scope, "limits": p.limits(), "quotas": p.quotas()}
                for p in Plan.objects.all()
            ],
            "partners": _partners(),
            "keys": _keys(),
            "jwt_issuers": [
                {
                    "name": i.name,
                    "issuer": i.issuer,
                    "jwks_url": i.jwks_url,
                    "audience": i.audience,
                    "partner_claim": i.partner_claim,
                    "algorithms": i.algorithms or None,
                    "leeway": i.leeway_seconds,
                }
                for i in JwtIssuer.objects.filter(enabled=True)
            ],
        }
    finally:
        _close_stale()


def _upstreams() -> list[UpstreamSpec]:
    targets: dict[int, list[TargetSpec]] = {}
    for target in Target.objects.filter(enabled=True).order_by("id"):
        targets.setdefault(target.upstream_id, []).append({"url": target.url, "weight": target.weight})
    return [u.snapshot_spec(targets.get(u.pk, [])) for u in Upstream.objects.order_by("name")]


def _partners() -> list[PartnerSpec]:
    subscriptions: dict[int, dict[str, str]] = {}
    for sub in Subscription.objects.filter(status="active").select_related("product", "plan"):
        subscriptions.setdefault(sub.partner_id, {})[sub.product.slug] = sub.plan.slug
    return [
        {
            "id": p.pk,
            "slug": p.slug,
            "status": p.status,
            "subscriptions": subscriptions.get(p.pk, {}),
            "ip_allow": list(p.ip_allow),
            "ip_deny": list(p.ip_deny),
        }
        for p in Partner.objects.all()
    ]


def _keys() -> list[KeySpec]:
    keys = ApiKey.objects.filter(revoked_at__isnull=True).prefetch_related("products")
    return [
        {
            "id": k.pk,
            "prefix": k.prefix,
            "hash": k.hashed,
            "partner": k.partner_id,
            "products": sorted(p.slug for p in k.products.all()),
            "expires": k.expires_at.timestamp() if k.expires_at else None,
        }
        for k in keys
    ]


def _close_stale() -> None:
    """The gateway calls this from a worker thread, whose connection may have gone stale while
    the database was away; a caller inside a transaction (explain, tests) keeps its own."""
    if not connection.in_atomic_block:
        close_old_connections()
