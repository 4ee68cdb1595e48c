"""``/metrics``: the Prometheus exposition of this instance, every worker process merged.

Answered before Django's host validation (apigw/probes.py), because Prometheus scrapes pods by
IP address, which no ``ALLOWED_HOSTS`` lists; the Django view stays for the test client. Only clients in
METRICS_ALLOWED_NETWORKS may read it (default: loopback and private networks, where
Prometheus scrapes instances directly; ``*`` allows everyone). Each scrape also checks Redis,
so ``apigw_redis_up`` is current even on an idle instance.
"""

from __future__ import annotations

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


def exposition(accept: str) -> tuple[bytes, str]:
    """The scrape body and its content type. Blocking (checks Redis for apigw_redis_up)."""
    gateway_metrics.set_redis_up(redis_check()[0]["ok"])
    encoder, content_type = choose_encoder(accept)
    return encoder(_registry()), content_type


def metrics(request: HttpRequest) -> HttpResponse:
    if not client_allowed(request.META.get("REMOTE_ADDR", "")):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    body, content_type = exposition(request.headers.get("accept", ""))
    return HttpResponse(body, content_type=content_type)
