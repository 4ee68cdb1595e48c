"""Configuration data for tests: upstreams with their targets, routes, products, plans, partners,
subscriptions and API keys.

Keyword-only, with defaults that make a valid object, so that a test names only what it is
about. Rows are created as ``objects.create`` creates them (no ``full_clean``: tests of validation
build their own); subscriptions and keys go through the services, the only place a key's secret
exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from proxy import services
from proxy.models import ApiKey, ApiProduct, Partner, Plan, Route, Subscription, Target, Upstream


def upstream(*, name: str = "demo", targets: Iterable[str | Mapping[str, Any]] = (), **fields: Any) -> Upstream:
    """An upstream and its targets, each a URL or the fields of a ``Target`` (url, weight, enabled)."""
    created = Upstream.objects.create(name=name, **fields)
    for spec in targets:
        target(upstream=created, **({"url": spec} if isinstance(spec, str) else spec))
    return created


def target(*, upstream: Upstream, url: str, **fields: Any) -> Target:
    return Target.objects.create(upstream=upstream, url=url, **fields)


def route(*, upstream: Upstream, name: str = "api", path: str = "/", **fields: Any) -> Route:
    """A route; the model's defaults apply (a prefix match that needs a key)."""
    return Route.objects.create(name=name, upstream=upstream, path=path, **fields)


def product(*, slug: str = "appliances", name: str = "", **fields: Any) -> ApiProduct:
    return ApiProduct.objects.create(slug=slug, name=name or _title(slug), **fields)


def plan(*, slug: str = "open", name: str = "", **fields: Any) -> Plan:
    """A plan; without limits or quotas it lets everything through."""
    return Plan.objects.create(slug=slug, name=name or _title(slug), **fields)


def partner(*, slug: str = "acme", name: str = "", status: str = "active", **fields: Any) -> Partner:
    return Partner.objects.create(slug=slug, name=name or _title(slug), status=status, **fields)


def subscription(*, partner: Partner, product: ApiProduct, plan: Plan, status: str = "active") -> Subscription:
    return services.subscription_set(partner=partner, product=product, plan=plan, status=status)


def api_key(
    *,
    partner: Partner,
    name: str = "key",
    products: Iterable[ApiProduct] = (),
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A key and its secret (shown once, as the portal shows it)."""
    return services.api_key_create(partner=partner, name=name, products=products, expires_at=expires_at)


def subscribed_key(*, product: ApiProduct, plan: Plan, partner: Partner | str = "acme", name: str = "key") -> str:
    """The secret of a new key of ``partner`` (a slug: found or created active), subscribed to
    ``product`` on ``plan``: everything a caller needs to be let through."""
    if isinstance(partner, str):
        partner = services.partner_get_or_create(slug=partner)
    subscription(partner=partner, product=product, plan=plan)
    return api_key(partner=partner, name=name)[1]


def _title(slug: str) -> str:
    return slug.replace("-", " ").title()
