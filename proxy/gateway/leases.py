"""Concurrent-WebSocket caps across every instance: an expiring lease per open socket.

A lease is a member of ``{p}ws:<subject>`` (vocabulary.py) scored by its expiry. The instance
renews its sockets' leases every ``LEASE_SECONDS / 3``; a crashed instance stops renewing, so
its sockets leave the count by themselves within ``LEASE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from redis.exceptions import RedisError

from proxy.gateway.auth import Identity
from proxy.gateway.errors import TooManyRequests
from proxy.gateway.redis_urls import AsyncClient
from proxy.gateway.socketpolicy import SocketPolicy
from proxy.gateway.vocabulary import RedisKeys, key_subject, partner_subject

log = logging.getLogger("apigw.websocket")

LEASE_SECONDS = 30.0

# Drop expired members, refuse when a cap is reached, else add ours.
_LEASE = """
local now, expires, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local cap = tonumber(ARGV[3 + i])
  if cap > 0 and redis.call('ZCARD', KEYS[i]) >= cap then return i end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], expires, id)
  redis.call('PEXPIREAT', KEYS[i], expires)
end
return 0
"""


class Leases:
    def __init__(self, redis: AsyncClient, keys: RedisKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._lease = redis.register_script(_LEASE)

    def lease_keys(self, identity: Identity | None, policy: SocketPolicy) -> tuple[list[str], list[int], list[str]]:
        """The lease keys of a socket, their caps, and what each counts ("key" or "partner")."""
        keys: list[str] = []
        caps: list[int] = []
        kinds: list[str] = []
        if identity is None:
            return keys, caps, kinds
        tag = self.keys.partner_tag(identity.partner.id)  # one slot for the script on a cluster
        if identity.key is not None and policy.max_per_key:
            keys.append(self.keys.socket_lease(tag, key_subject(identity.key.id)))
            caps.append(policy.max_per_key)
            kinds.append("key")
        if policy.max_per_partner:
            keys.append(self.keys.socket_lease(tag, partner_subject(identity.partner.id)))
            caps.append(policy.max_per_partner)
            kinds.append("partner")
        return keys, caps, kinds

    async def acquire(self, session_id: str, identity: Identity | None, policy: SocketPolicy) -> list[str]:
        """Take the socket's leases (429 ``too_many_sockets`` at a cap); returns the keys held."""
        keys, caps, kinds = self.lease_keys(identity, policy)
        if not keys:
            return keys
        now = time.time()
        try:
            refused = await self._lease(
                keys=keys, args=[int(now * 1000), int((now + LEASE_SECONDS) * 1000), session_id, *caps]
            )
        except (RedisError, OSError) as exc:
            log.warning("socket lease unavailable (%s); admitting", type(exc).__name__)
            return keys
        if refused:
            which = kinds[int(refused) - 1]
            raise TooManyRequests(f"Too many open WebSockets for this {which}.", code="too_many_sockets")
        return keys

    async def release(self, session_id: str, keys: list[str]) -> None:
        if not keys:
            return
        with contextlib.suppress(RedisError, OSError):
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.zrem(key, session_id)
            await pipe.execute()

    async def renew_forever(self, held: Callable[[], Iterable[tuple[str, list[str]]]]) -> None:
        """Renew the leases ``held()`` lists as (session id, lease keys), until cancelled."""
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            leased = [(sid, keys) for sid, keys in held() if keys]
            if not leased:
                continue
            expires = int((time.time() + LEASE_SECONDS) * 1000)
            try:
                pipe = self.redis.pipeline(transaction=False)
                for session_id, keys in leased:
                    for key in keys:
                        pipe.zadd(key, {session_id: expires}, xx=True)
                        pipe.pexpireat(key, expires)
                await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("socket lease renewal failed: %s", exc)
