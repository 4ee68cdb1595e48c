"""The client's address on the control plane (portal, admin, /metrics), by the gateway's rule.

``REMOTE_ADDR`` is the load balancer's address when there is one, so throttling on it would lump
every client together (five wrong passwords by anyone locking everyone out). ``X-Forwarded-For``
is believed exactly as far as the data plane believes it: hops added by GATEWAY_TRUSTED_PROXIES,
read right to left by ``proxy.gateway.iprules.ClientAddress``. With no trusted proxies the peer is
the client, whatever the header says, so it cannot be spoofed.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

from proxy.gateway.iprules import ClientAddress


@lru_cache(maxsize=4)
def _resolver(trusted: tuple[str, ...]) -> ClientAddress:
    return ClientAddress(trusted)


def resolve_client(peer: str, forwarded_for: str | None) -> str:
    """The client behind ``peer``; ``forwarded_for``: X-Forwarded-For, repeated headers joined by
    commas (as Django and ASGI servers join them; ClientAddress splits them)."""
    resolver = _resolver(tuple(settings.GATEWAY["TRUSTED_PROXIES"]))
    return resolver.resolve(peer, [forwarded_for] if forwarded_for else None) or "unknown"


def client_ip(request: HttpRequest) -> str:
    return resolve_client(str(request.META.get("REMOTE_ADDR") or ""), request.META.get("HTTP_X_FORWARDED_FOR"))
