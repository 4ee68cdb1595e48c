"""Every Redis key and channel the platform uses, built in one place.

All names start with the configured prefix (``REDIS_PREFIX``, default ``apigw:``) so that
several deployments, or a test run, can share one Redis and clean up only their own keys.

| name                                  | type    | written by                | read by            |
|---------------------------------------|---------|---------------------------|--------------------|
| ``{p}config:version``                 | integer | control plane (INCR)      | gateways (poll)    |
| ``{p}config:changed``                 | channel | control plane (PUBLISH)   | gateways (SUBSCRIBE)|
| ``{p}config:snapshot``                | hash    | gateways (last good)      | gateways (DB down) |
"""

from __future__ import annotations


class RedisKeys:
    __slots__ = ("prefix", "config_version", "config_channel", "config_snapshot")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.config_version = f"{prefix}config:version"
        self.config_channel = f"{prefix}config:changed"
        self.config_snapshot = f"{prefix}config:snapshot"
