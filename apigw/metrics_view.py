"""``/metrics``: the Prometheus exposition of this instance, every worker process merged.

Served by Django (a control prefix), so scrapes never touch the data plane. Readable by clients
in METRICS_ALLOWED_NETWORKS (default: loopback only; ``*`` allows everyone), the client address
found by the platform's one rule (apigw/clientip.py), or by anyone sending
``Authorization: Bearer <METRICS_BEARER_TOKEN>`` (Prometheus' ``authorization`` scrape option).
Private networks are not allowed by default: behind a load balancer every client comes from one.
Each scrape also checks Redis, so ``apigw_redis_up`` is current even on an idle instance.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from apigw import multiproc
from apigw.clientip import client_ip
from apigw.health import redis_check
from proxy.gateway import metrics as gateway_metrics

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=1)
def _allowed_networks(spec: tuple[str, ...]) -> tuple[Network, ...] | None:
    """None means everyone."""
    if "*" in spec:
        return None
    return tuple(ipaddress.ip_network(n, strict=False) for n in spec)


def client_allowed(address: str) -> bool:
    networks = _allowed_networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    if networks is None:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def _registry() -> Collector:
    path = os.environ.get(multiproc.ENV)
    if not path:
        return REGISTRY
    multiproc.prune_dead_workers(path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)
    return registry


def bearer_allowed(request: HttpRequest) -> bool:
    expected = settings.METRICS_BEARER_TOKEN
    if not expected:
        return False
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


def metrics(request: HttpRequest) -> HttpResponse:
    if not (bearer_allowed(request) or client_allowed(client_ip(request))):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    gateway_metrics.set_redis_up(redis_check()[0]["ok"])
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return HttpResponse(encoder(_registry()), content_type=content_type)
