"""Every Redis key and channel the platform uses, built in one place.

All names start with the configured prefix (``REDIS_PREFIX``, default ``apigw:``) so that
several deployments, or a test run, can share one Redis and clean up only their own keys.

| name                                  | type    | written by                | read by            |
|---------------------------------------|---------|---------------------------|--------------------|
| ``{p}config:version``                 | integer | control plane (INCR)      | gateways (poll)    |
| ``{p}config:changed``                 | channel | control plane (PUBLISH)   | gateways (SUBSCRIBE)|
| ``{p}config:snapshot``                | hash    | gateways (last good)      | gateways (DB down) |
| ``{p}rl:<subject>:<product>:<period>``| hash    | limiter script (buckets)  | limiter script     |
| ``{p}rl:route<id>:<caller>:<period>`` | hash    | limiter script            | limiter script     |
| ``{p}q:<subject>:<product>:<period>:<window>`` | integer | limiter script   | limiter, explain   |
| ``{p}usage``                          | hash    | limiter script            | usage flusher      |
| ``{p}usage:batch:<id>``               | hash    | usage flusher (RENAME)    | usage flusher      |
| ``{p}usage:batches``                  | zset    | usage flusher             | usage flusher      |
| ``{p}circuits``                       | hash    | gateways (circuit opened/closed) | gateways (poll) |
| ``{p}circuits:changed``               | channel | gateways (same script)    | gateways (SUBSCRIBE)|
| ``{p}cache:<route>:<sha256>``         | string  | gateways (cache store, PX)| gateways (MGET)    |

``<subject>`` is ``k<key id>`` or ``p<partner id>`` (the plan's scope); ``<caller>`` is the
subject, or ``ip<address>`` on public routes. ``{p}circuits`` maps ``<upstream>|<target url>`` to
``"<until ms> <openings>"`` of an ejected target (health.py; entries go when the target
recovers). A cache entry is ``<route id or name>`` plus the SHA-256 of method, path, query,
partner and the route's cache headers (cache.py); it expires with its TTL.

Redis Cluster is not supported yet: one limiter call touches keys of several subjects plus the
usage hash, which would need one hash tag.
"""

from __future__ import annotations

from typing import Any


class RedisKeys:
    __slots__ = (
        "prefix",
        "config_version",
        "config_channel",
        "config_snapshot",
        "usage",
        "usage_batches",
        "circuits",
        "circuits_channel",
    )

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.config_version = f"{prefix}config:version"
        self.config_channel = f"{prefix}config:changed"
        self.config_snapshot = f"{prefix}config:snapshot"
        self.usage = f"{prefix}usage"
        self.usage_batches = f"{prefix}usage:batches"
        self.circuits = f"{prefix}circuits"
        self.circuits_channel = f"{prefix}circuits:changed"

    def rate(self, subject: str, product: str, period: str) -> str:
        return f"{self.prefix}rl:{subject}:{product}:{period}"

    def route_rate(self, route: Any, caller: str, period: str) -> str:
        return f"{self.prefix}rl:route{route}:{caller}:{period}"

    def quota(self, subject: str, product: str, period: str, window: str) -> str:
        return f"{self.prefix}q:{subject}:{product}:{period}:{window}"

    def usage_batch(self, batch_id: str) -> str:
        return f"{self.prefix}usage:batch:{batch_id}"

    def cache(self, route: str, digest: str) -> str:
        return f"{self.prefix}cache:{route}:{digest}"
