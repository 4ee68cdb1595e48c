"""The data plane's settings as one frozen object, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "apigw:"
    control_prefixes: tuple[str, ...] = (
        "/admin/",
        "/portal/",
        "/api/admin/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/static/",
    )
    max_body_bytes: int = 10 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    config_poll_seconds: float = 2.0
    config_refresh_seconds: float = 60.0
    upstream_pool_size: int = 256
    via: str = "apigw"
    # Keyed hash of API keys (apikeys.py); derived from API_KEY_PEPPER or SECRET_KEY.
    api_key_pepper: bytes = field(default=b"", repr=False)
    limiter_policy: str = "local"  # Redis unreachable: "local" (fail open, per instance) or "deny" (503)
    usage_flush_seconds: float = 5.0
    ws_idle_timeout: float = 300.0
    ws_max_lifetime: float = 86_400.0
    ws_ping_interval: float = 20.0
    # Peers whose X-Forwarded-For is believed (CIDRs); the client is the first address from the
    # right that is not one of them (iprules.ClientAddress). Empty: the socket peer is the client.
    trusted_proxies: tuple[str, ...] = ()
    # Idempotent requests with a declared body up to this size are read before forwarding, so they
    # can be sent again to another target; larger or chunked bodies stream and are not retried.
    retry_buffer_bytes: int = 64 * 1024
    # How often each instance reads the shared circuit states from Redis (pub/sub carries them at
    # once; the poll covers missed messages and new instances).
    health_poll_seconds: float = 1.0
    # Request bodies: cut after this long without a chunk, or this long in all (408).
    body_idle_timeout: float = 30.0
    upload_timeout: float = 300.0
    # Longest wait for a free slot of an upstream (upstream_pool_size of them), then 503.
    upstream_queue_timeout: float = 1.0

    @classmethod
    def from_settings(cls, settings: Any) -> GatewayConfig:
        """Build from a Django settings object (duck-typed: only attributes are read)."""
        gw = settings.GATEWAY
        return cls(
            redis_url=settings.REDIS_URL,
            redis_prefix=settings.REDIS_PREFIX,
            control_prefixes=tuple(gw["CONTROL_PREFIXES"]),
            max_body_bytes=gw["MAX_BODY_BYTES"],
            connect_timeout=gw["CONNECT_TIMEOUT"],
            read_timeout=gw["READ_TIMEOUT"],
            config_poll_seconds=gw["CONFIG_POLL_SECONDS"],
            config_refresh_seconds=gw["CONFIG_REFRESH_SECONDS"],
            upstream_pool_size=gw["UPSTREAM_POOL_SIZE"],
            via=gw["VIA"],
            api_key_pepper=settings.API_KEY_PEPPER,
            limiter_policy=gw["LIMITER_POLICY"],
            usage_flush_seconds=gw["USAGE_FLUSH_SECONDS"],
            ws_idle_timeout=gw["WS_IDLE_TIMEOUT"],
            ws_max_lifetime=gw["WS_MAX_LIFETIME"],
            ws_ping_interval=gw["WS_PING_INTERVAL"],
            trusted_proxies=tuple(gw.get("TRUSTED_PROXIES", ())),
            retry_buffer_bytes=gw.get("RETRY_BUFFER_BYTES", 64 * 1024),
            health_poll_seconds=gw.get("HEALTH_POLL_SECONDS", 1.0),
            body_idle_timeout=gw.get("BODY_IDLE_TIMEOUT", 30.0),
            upload_timeout=gw.get("UPLOAD_TIMEOUT", 300.0),
            upstream_queue_timeout=gw.get("UPSTREAM_QUEUE_TIMEOUT", 1.0),
        )
