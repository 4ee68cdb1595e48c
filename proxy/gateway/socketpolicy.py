"""A route's WebSocket limits, compiled once per snapshot (``TrafficPolicy.socket``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from proxy.gateway.spec import SocketSpec

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SocketPolicy:
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    messages_per_second: int | None = None
    key_messages_per_second: int | None = None
    rate_action: str = "close"  # or "drop"
    max_per_key: int | None = None
    max_per_partner: int | None = None

    @classmethod
    def from_spec(cls, spec: SocketSpec | None) -> SocketPolicy:
        spec = spec or SocketSpec()
        return cls(
            max_message_bytes=int(spec.get("max_message_bytes") or DEFAULT_MAX_MESSAGE_BYTES),
            messages_per_second=spec.get("messages_per_second"),
            key_messages_per_second=spec.get("key_messages_per_second"),
            rate_action=spec.get("rate_action") or "close",
            max_per_key=spec.get("max_per_key"),
            max_per_partner=spec.get("max_per_partner"),
        )


DEFAULT_SOCKET_POLICY = SocketPolicy()


class TokenBucket:
    """``rate`` messages per second with a burst of one second's worth."""

    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: int) -> None:
        self.rate = float(rate)
        self.tokens = float(rate)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
