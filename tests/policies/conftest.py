from __future__ import annotations

from typing import Any

from proxy.gateway import apikeys
from tests.resilience.conftest import backends, route, upstream

__all__ = ["backends", "keyed", "route", "upstream"]

PEPPER = b"pepper-of-the-policy-tests"


def keyed(data: dict[str, Any], partners: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Add active partners (slug → extra partner fields, e.g. ip_allow) with one key each to a
    snapshot; returns slug → secret. Start the gateway with ``api_key_pepper=PEPPER``."""
    secrets: dict[str, str] = {}
    data.setdefault("plans", [])
    data.setdefault("partners", [])
    data.setdefault("keys", [])
    for number, (slug, extra) in enumerate(partners.items(), start=len(data["partners"]) + 1):
        secret, prefix = apikeys.generate()
        secrets[slug] = secret
        data["partners"].append({"id": number, "slug": slug, "status": "active", "subscriptions": {}, **extra})
        data["keys"].append({"id": number, "prefix": prefix, "hash": apikeys.digest(PEPPER, secret), "partner": number})
    return secrets
