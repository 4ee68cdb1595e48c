"""Every name the planes and the instances share: Redis keys, limit subjects, usage fields,
WebSocket lease keys and revocation groups, built and parsed here and nowhere else.

All Redis names start with the configured prefix (``REDIS_PREFIX``, default ``apigw:``) so that
several deployments, or a test run, can share one Redis and clean up only their own keys.

| name                                  | type    | written by                | read by            |
|---------------------------------------|---------|---------------------------|--------------------|
| ``{p}config:version``                 | integer | control plane (INCR)      | gateways (poll)    |
| ``{p}config:changed``                 | channel | control plane (PUBLISH)   | gateways (SUBSCRIBE)|
| ``{p}config:snapshot``                | hash    | gateways (last good)      | gateways (DB down) |
| ``{p}rl:<subject>:<product>:<period>``| hash    | limiter script (buckets)  | limiter script     |
| ``{p}rl:route<id>:<caller>:<period>`` | hash    | limiter script            | limiter script     |
| ``{p}q:<subject>:<product>:<period>:<window>`` | integer | limiter script   | limiter, explain, portal |
| ``{p}usage``                          | hash    | limiter script            | usage flusher      |
| ``{p}usage:batch:<id>``               | hash    | usage flusher (RENAME)    | usage flusher      |
| ``{p}usage:batches``                  | zset    | usage flusher             | usage flusher      |
| ``{p}circuits``                       | hash    | gateways (circuit opened/closed) | gateways (poll) |
| ``{p}circuits:changed``               | channel | gateways (same script)    | gateways (SUBSCRIBE)|
| ``{p}cache:<route>:<sha256>``         | string  | gateways (cache store, PX)| gateways (MGET)    |
| ``{p}ws:<subject>``                   | zset    | gateways (socket leases)  | gateways           |

``<subject>`` is ``k<key id>`` or ``p<partner id>`` (the plan's scope); ``<caller>`` is the
subject, or ``ip<address>`` on public routes. ``{p}circuits`` maps ``<upstream>|<target url>`` to
``"<until ms> <openings>"`` of an ejected target (circuits.py; entries go when the target
recovers). A cache entry is ``<route id or name>`` plus the SHA-256 of the request's identity
(cache.py); it expires with its TTL. A socket lease is a member per open WebSocket scored by its
expiry, so a crashed instance's sockets leave by themselves.

Usage fields of ``{p}usage``: ``<hour>|<partner>|<key>|<route>|<product>|<metric>`` (``<key>`` and
``<route>`` empty when there is none) with the metrics of ``USAGE_METRICS``, plus
``last|<key>`` = the key's last-used time (epoch seconds). Revocation groups on the channel
layer: ``apikey.<id>`` and ``partner.<id>``.

Redis Cluster is not supported yet: one limiter call touches keys of several subjects plus the
usage hash, which would need one hash tag.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# metric → the UsageHourly column it is added to. ``req`` counts every request that reached the
# limiter, admitted or refused; ``429`` the refused ones; so admitted = req − 429 (``admitted``).
USAGE_METRICS = {
    "req": "requests",
    "2xx": "status_2xx",
    "3xx": "status_3xx",
    "4xx": "status_4xx",
    "5xx": "status_5xx",
    "429": "status_429",
    "lat_ms": "latency_ms_sum",
}
USAGE_COLUMNS = tuple(USAGE_METRICS.values())
_LAST_USED = "last"


def admitted(requests: int | None, refused: int | None) -> int:
    """Requests that counted against a quota: every counted request minus the refused ones."""
    return int(requests or 0) - int(refused or 0)


# -- limit subjects --------------------------------------------------------------------------------
def key_subject(key_id: int) -> str:
    return f"k{key_id}"


def partner_subject(partner_id: int) -> str:
    return f"p{partner_id}"


def ip_caller(address: str) -> str:
    return f"ip{address}"


def plan_subject(scope: str, *, partner_id: int, key_id: int | None) -> str:
    """Who a plan's limits count against: the key (scope "key") or the whole partner."""
    return key_subject(key_id) if scope == "key" and key_id is not None else partner_subject(partner_id)


# -- usage fields ----------------------------------------------------------------------------------
class UsageField(NamedTuple):
    hour: int
    partner_id: int
    key_id: int | None
    route_id: int | None
    product: str
    metric: str


def usage_prefix(hour: int, partner_id: int, key_id: int | None, route_id: Any, product: str) -> str:
    """The field prefix of one request's usage; the metric is appended (``usage_field``)."""
    return f"{hour}|{partner_id}|{key_id if key_id is not None else ''}|{route_id or ''}|{product}"


def usage_field(prefix: str, metric: str) -> str:
    return f"{prefix}|{metric}"


def last_used_field(key_id: int) -> str:
    return f"{_LAST_USED}|{key_id}"


def parse_usage_field(field: str) -> UsageField | int | None:
    """A usage field: ``UsageField``, a key id for a last-used field, or None if not understood."""
    parts = field.split("|")
    if parts[0] == _LAST_USED and len(parts) == 2 and parts[1].isdigit():
        return int(parts[1])
    if len(parts) != 6 or parts[5] not in USAGE_METRICS:
        return None
    hour, partner, key, route, product, metric = parts
    if not (hour.isdigit() and partner.isdigit() and (not key or key.isdigit())):
        return None
    return UsageField(
        int(hour), int(partner), int(key) if key else None, int(route) if route.isdigit() else None, product, metric
    )


# -- revocation groups (channel layer) ---------------------------------------------------------------
def key_group(key_id: int) -> str:
    return f"apikey.{key_id}"


def partner_group(partner_id: int) -> str:
    return f"partner.{partner_id}"


# -- Redis keys ------------------------------------------------------------------------------------
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

    def socket_lease(self, subject: str) -> str:
        return f"{self.prefix}ws:{subject}"
