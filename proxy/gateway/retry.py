"""When a failed attempt may be sent again, to another target, and how many retries an upstream
can take (the retry budget).

Only idempotent methods (RFC 9110 9.2.2) are retried, only before any byte of the response
reached the client, and only when the request body can be sent again: no body, or a declared
body of at most ``GATEWAY_RETRY_BUFFER_BYTES`` that the forwarder read first. A chunked or large
upload streams straight through and is retried only if the connection failed before its first
byte was read.

Retried: connection failures (refused, reset, closed before the response, connect timeout) and
the route's ``retry_statuses``. Not retried: read timeouts (the upstream may still be working on
it, and a second wait doubles the latency the client sees).

The budget (after Finagle and Linkerd) keeps retries from multiplying an outage: over the last
10 seconds an upstream gets at most ``ratio`` retries per request plus ``per_second`` retries a
second, per gateway instance. With every target down, the upstream sees at most ``1 + ratio``
attempts per request instead of ``1 + retries``.
"""

from __future__ import annotations

from dataclasses import dataclass

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_SLOTS = 10  # one-second buckets


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 2
    statuses: frozenset[int] = frozenset()

    def applies_to(self, method: str) -> bool:
        return self.retries > 0 and method in IDEMPOTENT


class RetryBudget:
    __slots__ = ("ratio", "per_second", "_second", "_requests", "_retries")

    def __init__(self, ratio: float = 0.2, per_second: float = 5.0) -> None:
        if ratio < 0 or per_second < 0:
            raise ValueError("the retry budget's ratio and per_second must not be negative")
        self.ratio = ratio
        self.per_second = per_second
        self._second = [0] * _SLOTS  # which second each slot currently counts
        self._requests = [0] * _SLOTS
        self._retries = [0] * _SLOTS

    def _slot(self, now: float) -> int:
        second = int(now)
        slot = second % _SLOTS
        if self._second[slot] != second:
            self._second[slot] = second
            self._requests[slot] = 0
            self._retries[slot] = 0
        return slot

    def _sums(self, now: float) -> tuple[int, int]:
        oldest = int(now) - _SLOTS + 1
        requests = retries = 0
        for slot in range(_SLOTS):
            if self._second[slot] >= oldest:
                requests += self._requests[slot]
                retries += self._retries[slot]
        return requests, retries

    def request(self, now: float) -> None:
        """Count a first attempt."""
        self._requests[self._slot(now)] += 1

    def withdraw(self, now: float) -> bool:
        """Take one retry from the budget; False when it is spent."""
        slot = self._slot(now)
        requests, retries = self._sums(now)
        if retries + 1 > self.ratio * requests + self.per_second * _SLOTS:
            return False
        self._retries[slot] += 1
        return True
