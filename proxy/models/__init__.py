"""Control-plane models. The data plane never imports these; it reads proxy/snapshot_builder.py's output."""

from proxy.models.partners import ApiKey, ApiProduct, JwtIssuer, Partner, Plan, Subscription
from proxy.models.routing import Route, Target, Upstream
from proxy.models.usage import UsageFlush, UsageHourly

__all__ = [
    "ApiKey",
    "ApiProduct",
    "JwtIssuer",
    "Partner",
    "Plan",
    "Route",
    "Subscription",
    "Target",
    "Upstream",
    "UsageFlush",
    "UsageHourly",
]
