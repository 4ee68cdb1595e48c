"""Every name the planes and the instances share: Redis keys, limit subjects, usage fields,
WebSocket lease keys and revocation groups, built and parsed here and nowhere else.

All Redis names start with the configured prefix (``REDIS_PREFIX``, default ``apigw:``) so that
several deployments, or a test run, can share one Redis and clean up only their own keys.

| name                                          | type    | written by                | read by            |
|-----------------------------------------------|---------|---------------------------|--------------------|
| ``{p}config:version``                         | integer | control plane (INCR)      | gateways (poll)    |
| ``{p}config:changed``                         | channel | control plane (PUBLISH)   | gateways (SUBSCRIBE)|
| ``{p}config:snapshot``                        | hash    | gateways (last good)      | gateways (DB down) |
| ``{p}<t>w2:rl:<subject>:<product>:<period>``  | hash    | limiter script (buckets)  | limiter, explain   |
| ``{p}<t>w2:rl:route<id>:<caller>:<period>``   | hash    | limiter script            | limiter, explain   |
| ``{p}<t>q:<subject>:<product>:<period>:<window>`` | integer | limiter script        | limiter, explain, portal |
| ``{p}<t>usage``                               | hash    | limiter script            | usage flusher      |
| ``{p}<t>usage:batch:<id>``                    | hash    | usage flusher (RENAME)    | usage flusher      |
| ``{p}<t>usage:batches``                       | zset    | usage flusher             | usage flusher      |
| ``{p}circuits``                               | hash    | gateways (circuit opened/closed) | gateways (poll) |
| ``{p}circuits:changed``                       | channel | gateways (same script)    | gateways (SUBSCRIBE)|
| ``{p}cache:<route>:<sha256>``                 | string  | gateways (cache store, PX)| gateways (MGET)    |
| ``{p}<t>ws:<subject>``                        | zset    | gateways (socket leases)  | gateways           |

``<subject>`` is ``k<key id>`` or ``p<partner id>`` (the plan's scope); ``<caller>`` is the
subject, or ``ip<address>`` on public routes. An ``rl:`` hash is one sliding window: bucket
index → count, plus ``t`` (total), ``o`` (oldest bucket) and ``l`` (newest) so that a request
reads and writes it once (ratelimit.lua). ``w2:`` names that layout: the script before it read
every field as a bucket and would fail on ``t``, so during a rolling upgrade the two versions
count in different hashes (limits looser by at most one window, never an error), and the old
hashes expire by themselves.
``{p}circuits`` maps ``<upstream>|<target url>`` to
``"<until ms> <openings>"`` of an ejected target (circuits.py; entries go when the target
recovers). A cache entry is ``<route id or name>`` plus the SHA-256 of the request's identity
(cache.py); it expires with its TTL. A socket lease is a member per open WebSocket scored by its
expiry, so a crashed instance's sockets leave by themselves.

**Hash tags (Redis Cluster).** ``<t>`` is empty on a single Redis, so the names there are what
they always were. On a cluster it is a hash tag ``{s<n>}`` with ``n`` in ``0 … CLUSTER_TAGS-1``:
every key one limiter call touches (the plan's, the route's and the usage hash) and every lease
key of one socket carry the same tag, so the script stays one atomic call on one shard. An
authenticated request's tag is its partner's (``partner_id mod CLUSTER_TAGS``: all of a
partner's keys and the partner itself), an anonymous one's is its client IP's (CRC-32 of the
address). The usage hash is therefore sharded by tag too: ``CLUSTER_TAGS`` hashes with fixed
names (``usage_keys``), which the flusher claims one by one, so it never has to search for them.
Keys read or written alone (config, circuits, cache entries) need no tag and spread over the
shards by their own names.

Usage fields of ``{p}<t>usage``: ``<hour>|<partner>|<key>|<route>|<product>|<metric>`` (``<key>``
and ``<route>`` empty when there is none) with the metrics of ``USAGE_METRICS``, plus
``last|<key>`` = the key's last-used time (epoch seconds). Revocation groups on the channel
layer: ``apikey.<id>`` and ``partner.<id>``.
"""

from __future__ import annotations

import zlib
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
# Hash tags on a cluster (see the module docstring). Fixed: changing it moves every counter to a
# new name, i.e. resets the limits and strands unflushed usage under the old names. 64 tags spread
# evenly enough over a handful of primaries and keep the flusher's claims per cycle cheap.
CLUSTER_TAGS = 64


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
    """Every Redis name under one prefix. ``cluster`` adds the hash tags (module docstring)."""

    __slots__ = (
        "prefix",
        "cluster",
        "tags",
        "config_version",
        "config_channel",
        "config_snapshot",
        "usage",
        "usage_batches",
        "circuits",
        "circuits_channel",
    )

    def __init__(self, prefix: str, *, cluster: bool = False) -> None:
        if cluster and ("{" in prefix or "}" in prefix):
            # A brace in the prefix would become every key's hash tag: one slot for everything.
            raise ValueError(f"a Redis prefix for a cluster must not contain braces, got {prefix!r}")
        self.prefix = prefix
        self.cluster = cluster
        # Every tag a key can carry ("" alone on a single Redis): the usage flusher walks them.
        self.tags: tuple[str, ...] = tuple(f"{{s{n}}}" for n in range(CLUSTER_TAGS)) if cluster else ("",)
        self.config_version = f"{prefix}config:version"
        self.config_channel = f"{prefix}config:changed"
        self.config_snapshot = f"{prefix}config:snapshot"
        self.usage = f"{prefix}usage"  # the single Redis' usage hash (tag ""); usage_key(tag) in general
        self.usage_batches = f"{prefix}usage:batches"
        self.circuits = f"{prefix}circuits"
        self.circuits_channel = f"{prefix}circuits:changed"

    # -- hash tags ---------------------------------------------------------------------------------
    def partner_tag(self, partner_id: int) -> str:
        """The tag of everything counted for a partner and its keys ("" on a single Redis)."""
        return self.tags[partner_id % len(self.tags)] if self.cluster else ""

    def ip_tag(self, address: str) -> str:
        """The tag of an anonymous caller's counters ("" on a single Redis)."""
        return self.tags[zlib.crc32(address.encode()) % len(self.tags)] if self.cluster else ""

    # -- names -------------------------------------------------------------------------------------
    def rate(self, tag: str, subject: str, product: str, period: str) -> str:
        return f"{self.prefix}{tag}w2:rl:{subject}:{product}:{period}"

    def route_rate(self, tag: str, route: Any, caller: str, period: str) -> str:
        return f"{self.prefix}{tag}w2:rl:route{route}:{caller}:{period}"

    def quota(self, tag: str, subject: str, product: str, period: str, window: str) -> str:
        return f"{self.prefix}{tag}q:{subject}:{product}:{period}:{window}"

    def usage_key(self, tag: str) -> str:
        return f"{self.prefix}{tag}usage"

    def usage_keys(self) -> tuple[str, ...]:
        return tuple(self.usage_key(tag) for tag in self.tags)

    def usage_batch_index(self, tag: str) -> str:
        return f"{self.prefix}{tag}usage:batches"

    def usage_batch(self, batch_id: str, tag: str = "") -> str:
        return f"{self.prefix}{tag}usage:batch:{batch_id}"

    def cache(self, route: str, digest: str) -> str:
        return f"{self.prefix}cache:{route}:{digest}"

    def socket_lease(self, tag: str, subject: str) -> str:
        return f"{self.prefix}{tag}ws:{subject}"
