"""Django's cache (django-redis) on a Redis Cluster.

django-redis builds a plain ``redis.Redis`` on a connection pool; a cluster needs redis-py's
``RedisCluster``, which routes each command to the primary of its key's slot. The platform's
cache users (the throttles in apigw/throttle.py: ``get``, ``add``, ``incr``, ``delete``, one key
each) need nothing more, so this factory only swaps the client: built from the cluster URL by
proxy/gateway/redis_urls.py like every other Redis client, one per URL and process.
"""

from __future__ import annotations

from typing import Any

from django_redis.pool import ConnectionFactory

from proxy.gateway.redis_urls import SyncClient, sync_client


class ClusterConnectionFactory(ConnectionFactory):
    _clients: dict[str, SyncClient] = {}

    def connect(self, url: str) -> Any:
        client = self._clients.get(url)
        if client is None:
            options: dict[str, Any] = {}
            for option, name in (
                ("SOCKET_TIMEOUT", "socket_timeout"),
                ("SOCKET_CONNECT_TIMEOUT", "socket_connect_timeout"),
            ):
                if self.options.get(option):
                    options[name] = self.options[option]
            client = self._clients[url] = sync_client(url, **options)
        return client

    def disconnect(self, connection: Any) -> None:
        connection.close()
