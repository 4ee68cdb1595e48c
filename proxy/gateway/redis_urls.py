"""What ``REDIS_URL`` names: one Redis, or a Redis Cluster, and the clients that reach it.

A single Redis is any URL redis-py reads (``redis://``, ``rediss://``, ``unix://``). A cluster is
``redis+cluster://[user:password@]host:port[,host:port…][/][?options]`` (``rediss+cluster://``
for TLS): the seed nodes the clients ask for the slot map (any of them will do, so list more
than one and an instance starts while one node is down). Everything else (ACL user, password,
TLS options) means what it means in a plain URL, for every node. A cluster has one database,
so a path other than ``/`` or ``/0`` is refused.

Every Redis client of the platform is built here, so a cluster URL reaches all of them: the
gateway's redis-py clients (snapshot, circuits, leases, cache), the control plane's synchronous
one (config bus, usage flusher, portal) and, through ``apigw/rediscache.py``, Django's cache.
The limiter's own lean connection has its cluster twin in ``redis_cluster.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.exceptions import RedisError

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

# What both kinds of client are: code that only sends single-key commands takes either.
AsyncClient = aioredis.Redis | AsyncRedisCluster
SyncClient = redis.Redis | RedisCluster


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """``url``: a plain Redis URL (the first seed's, for a cluster) that carries the credentials
    and TLS options for every node; ``seeds``: the cluster's seed nodes, empty for one Redis."""

    url: str
    seeds: tuple[tuple[str, int], ...] = ()

    @property
    def cluster(self) -> bool:
        return bool(self.seeds)


def is_cluster(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def parse(url: str) -> RedisTarget:
    """The target of a URL; ``ValueError`` saying what is wrong with it."""
    if not is_cluster(url):
        parse_url(url)  # redis-py's validation, the one every other client applies
        return RedisTarget(url)
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    seeds: list[tuple[str, int]] = []
    for hostport in hosts.split(","):
        host, sep, port = hostport.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"a cluster seed must be host:port, got {hostport!r}")
        seeds.append((unquote(host), int(port)))
    if parts.path not in ("", "/", "/0"):
        raise ValueError(f"a Redis Cluster has only database 0, got the path {parts.path!r}")
    host, port = parts.netloc.rpartition("@")[2].split(",")[0].strip().rsplit(":", 1)
    plain = f"{CLUSTER_SCHEMES[parts.scheme]}://{userinfo + '@' if userinfo else ''}{host}:{port}"
    if parts.query:
        plain += f"?{parts.query}"
    options = parse_url(plain)
    if int(options.get("db") or 0):
        raise ValueError("a Redis Cluster has only database 0 (the db option)")
    return RedisTarget(plain, tuple(seeds))


def async_client(url: str, **options: Any) -> AsyncClient:
    """redis-py's asyncio client for ``url``: ``Redis`` or ``RedisCluster``."""
    target = parse(url)
    if not target.cluster:
        return aioredis.Redis.from_url(url, **options)
    options.pop("health_check_interval", None)  # the cluster client checks its nodes itself
    nodes = [AsyncClusterNode(host, port) for host, port in target.seeds[1:]]
    return AsyncRedisCluster.from_url(target.url, startup_nodes=nodes, **options)


def sync_client(url: str, **options: Any) -> SyncClient:
    """redis-py's synchronous client for ``url``: ``Redis`` or ``RedisCluster``."""
    target = parse(url)
    if not target.cluster:
        return redis.Redis.from_url(url, **options)
    options.pop("retry", None)  # not accepted per node; the cluster client retries by itself
    nodes = [ClusterNode(host, port) for host, port in target.seeds[1:]]
    return RedisCluster(url=target.url, startup_nodes=nodes, **options)


async def pubsub(client: AsyncClient) -> Any:
    """A PubSub on ``client``. On a cluster, SUBSCRIBE goes to one node (PUBLISH reaches every
    node over the cluster bus), and redis-py's cluster client must know its slot map for that."""
    if isinstance(client, AsyncRedisCluster):
        await client.initialize()
    return client.pubsub()


async def listen(
    client: AsyncClient,
    channel: str,
    on_message: Callable[[bytes | str], Awaitable[None]],
    *,
    on_subscribed: Callable[[], Awaitable[None]] | None = None,
    on_lost: Callable[[Exception], None],
) -> None:
    """Subscribe to ``channel`` and hand every message's data to ``on_message``, for ever: a lost
    connection is reported to ``on_lost`` and the subscription made again a second later. What
    was published in between is missed, so each user also polls (``on_subscribed`` runs after
    every subscription, to catch up at once)."""
    while True:
        subscription = None
        try:
            subscription = await pubsub(client)
            await subscription.subscribe(channel)
            if on_subscribed is not None:
                await on_subscribed()
            async for message in subscription.listen():
                if message.get("type") == "message":
                    await on_message(message["data"])
        except (RedisError, OSError) as exc:
            on_lost(exc)
            await asyncio.sleep(1.0)
        finally:
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.aclose()
