"""Build the plain-data description of the configuration that the data plane compiles.

Runs in a worker thread of the gateway process (``ConfigStore`` calls it with
``asyncio.to_thread``) and in the control plane for ``explain``; it only reads. Revoked keys
are left out (so they are unknown to the gateway); expired ones stay in so the gateway can say
"expired" (403) instead of "invalid" (401).
"""

from __future__ import annotations

from django.db import close_old_connections, connection
from django.db.models import Exists, OuterRef, Q

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


# Partners and keys are read as tuples, not model instances: at 100k partners building model
# objects was most of the reload (bench/snapshot_reload.py, docs/benchmarks.md).
def _partners() -> list[PartnerSpec]:
    subscriptions: dict[int, dict[str, str]] = {}
    for partner_id, product, plan in Subscription.objects.filter(status="active").values_list(
        "partner_id", "product__slug", "plan__slug"
    ):
        subscriptions.setdefault(partner_id, {})[product] = plan
    served = Partner.objects.filter(served_partners_q()).order_by("pk")
    # Few partners have IP rules; decoding two JSON columns for every row cost more than the rest.
    ips = {
        pk: (list(allow or ()), list(deny or ()))
        for pk, allow, deny in served.exclude(ip_allow=[], ip_deny=[]).values_list("pk", "ip_allow", "ip_deny")
    }
    return [
        {
            "id": pk,
            "slug": slug,
            "status": status,
            "subscriptions": subscriptions.get(pk, {}),
            "ip_allow": ips.get(pk, ([], []))[0],
            "ip_deny": ips.get(pk, ([], []))[1],
        }
        for pk, slug, status in served.values_list("pk", "slug", "status")
    ]


def served_partners_q() -> Q:
    """Which partners the gateway knows: every one but those pending without a key. A pending
    sign-up cannot call anything, so leaving it out keeps anonymous sign-ups away from the data
    plane (proxy/signals.py does not bump the version for them either); a pending partner that
    staff gave a key stays in, so the key answers "partner pending" (403), not "invalid" (401)."""
    live_keys = ApiKey.objects.filter(partner=OuterRef("pk"), revoked_at__isnull=True)
    return ~Q(status="pending") | Q(Exists(live_keys))


def partner_is_served(partner: Partner) -> bool:
    """``served_partners_q`` for one partner (proxy/signals.py)."""
    return partner.status != "pending" or ApiKey.objects.filter(partner=partner, revoked_at__isnull=True).exists()


def _keys() -> list[KeySpec]:
    live = ApiKey.objects.filter(revoked_at__isnull=True)
    products: dict[int, list[str]] = {}
    for key_id, slug in ApiKey.products.through.objects.filter(apikey__revoked_at__isnull=True).values_list(
        "apikey_id", "apiproduct__slug"
    ):
        products.setdefault(key_id, []).append(slug)
    return [
        {
            "id": pk,
            "prefix": prefix,
            "hash": hashed,
            "partner": partner_id,
            "products": sorted(products.get(pk, ())),
            "expires": expires_at.timestamp() if expires_at else None,
        }
        for pk, prefix, hashed, partner_id, expires_at in live.order_by("-created", "-pk").values_list(
            "pk", "prefix", "hashed", "partner_id", "expires_at"
        )
    ]


def _close_stale() -> None:
    """The gateway calls this from a worker thread, whose connection may have gone stale while
    the database was away; a caller inside a transaction (explain, tests) keeps its own."""
    if not connection.in_atomic_block:
        close_old_connections()
