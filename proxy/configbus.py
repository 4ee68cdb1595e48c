"""The control plane's half of configuration propagation: bump the version, announce it.

Gateways reload on the announcement within milliseconds; those that missed it see the new
version on their next poll (GATEWAY_CONFIG_POLL_SECONDS).
"""

from __future__ import annotations

import logging
from functools import lru_cache

import redis
from django.conf import settings
from django.db import transaction

from proxy.gateway.redis_urls import SyncClient, is_cluster, sync_client
from proxy.gateway.vocabulary import RedisKeys

log = logging.getLogger("apigw.config")


@lru_cache(maxsize=4)
def _client(url: str) -> SyncClient:
    return sync_client(url, socket_connect_timeout=1.0, socket_timeout=2.0)


def redis_client() -> SyncClient:
    """The control plane's shared synchronous Redis client (a ``RedisCluster`` on a cluster)."""
    return _client(settings.REDIS_URL)


def keys() -> RedisKeys:
    return _keys(settings.REDIS_PREFIX, settings.REDIS_URL)


@lru_cache(maxsize=4)
def _keys(prefix: str, url: str) -> RedisKeys:
    return RedisKeys(prefix, cluster=is_cluster(url))


def bump_config_version() -> int | None:
    """Increment the config version and publish it. Returns the new version, or None when
    Redis is unreachable (the gateways' periodic full reload then picks the change up)."""
    names = keys()
    try:
        client = redis_client()
        version = int(client.incr(names.config_version))
        client.publish(names.config_channel, version)
    except (redis.RedisError, OSError) as exc:
        log.warning("config version bump failed, gateways will see the change on their next full reload: %s", exc)
        return None
    return version


def bump_on_commit() -> None:
    """Bump once the surrounding transaction commits (at once outside a transaction), so a
    gateway that reloads on the message reads the committed rows. Once per transaction: a
    change of 10,000 rows is one reload for every gateway, not 10,000. (Safe with savepoints: a
    later change is inside every savepoint still open around the first, so rolling one of those
    back drops both changes along with the bump.)"""
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(func is bump_config_version for _, func, _ in connection.run_on_commit):
        return
    transaction.on_commit(bump_config_version)
