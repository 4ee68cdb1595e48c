"""Choosing a target among an upstream's targets.

Algorithms (per upstream):

- ``round_robin``: nginx's smooth weighted round-robin over a precomputed schedule; a canary
  with weight 5 next to 95 gets exactly 5 % of the picks, spread evenly.
- ``least_requests``: the same smooth weighted round-robin over *effective* weights
  ``weight / (requests in flight + 1)``, recomputed per pick: idle targets get exactly their
  weights, a target that is slow to answer (many in flight) gets fewer new requests.
- ``consistent_hash``: a hash ring (virtual nodes in proportion to the weights) over the
  partner, the API key, the client IP or a header: one caller sticks to one target, and adding
  or removing a target moves only the callers of that target. Without a hash value (anonymous
  caller, header absent) the pick falls back to round-robin.

Every algorithm skips targets whose circuit does not admit requests (breaker.py); an ejected
target's callers move to the next target of the schedule or ring and come back when it does.
In-flight counts and schedule positions are per instance.
"""

from __future__ import annotations

import hashlib
import time
from bisect import bisect_left
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from math import gcd
from urllib.parse import urlsplit

from proxy.gateway.breaker import BreakerSettings, Circuit
from proxy.gateway.probes import HealthCheck
from proxy.gateway.retry import RetryBudget
from proxy.gateway.spec import UpstreamSpec

ALGORITHMS = ("round_robin", "least_requests", "consistent_hash")
HASH_ON = ("partner", "key", "ip", "header")
# A weighted schedule longer than this is scaled down: the order stays smooth and the shares
# stay within 1/_MAX_SCHEDULE of the configured ones.
_MAX_SCHEDULE = 1000
# Ring points per unit of the smallest weight, and in all: ±≈5 % share per target at 160.
_RING_POINTS = 160
_MAX_RING = 16_000


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    weight: int

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str, weight: int = 1) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"target URL must be http(s)://host[:port], got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return cls(url.rstrip("/"), parts.scheme, host, port, int(weight))


def smooth_weighted_schedule(weights: Sequence[int]) -> list[int]:
    """Indexes in nginx's smooth weighted round-robin order: weights 5,1,1 give
    0,0,1,0,2,0,0 rather than five 0s in a row, so a canary's share arrives evenly."""
    active = [max(0, w) for w in weights]
    divisor = 0
    for w in active:
        divisor = gcd(divisor, w)
    if divisor == 0:
        return []
    active = [w // divisor for w in active]
    total = sum(active)
    if total > _MAX_SCHEDULE:
        active = [max(1, round(w * _MAX_SCHEDULE / total)) if w else 0 for w in active]
        total = sum(active)
    current = [0] * len(active)
    schedule = []
    for _ in range(total):
        for i, w in enumerate(active):
            current[i] += w
        best = max(range(len(active)), key=lambda i: current[i])
        current[best] -= total
        schedule.append(best)
    return schedule


def hash64(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


def hash_ring(targets: Sequence[Target]) -> tuple[list[int], list[int]]:
    """Sorted ring points and the target index owning each."""
    weights = [t.weight for t in targets if t.weight > 0]
    if not weights:
        return [], []
    per_unit = _RING_POINTS / min(weights)
    total = sum(weights) * per_unit
    if total > _MAX_RING:
        per_unit *= _MAX_RING / total
    points: list[tuple[int, int]] = []
    for index, target in enumerate(targets):
        if target.weight > 0:
            for replica in range(max(1, round(target.weight * per_unit))):
                points.append((hash64(f"{target.url}#{replica}"), index))
    points.sort()
    return [p for p, _ in points], [i for _, i in points]


class Upstream:
    """A compiled upstream: its targets, their circuits, and how to choose among them."""

    __slots__ = (
        "name",
        "targets",
        "connect_timeout",
        "read_timeout",
        "algorithm",
        "hash_on",
        "hash_header",
        "breaker",
        "health_check",
        "retry_budget",
        "circuits",
        "inflight",
        "_schedule",
        "_position",
        "_current",
        "_ring",
        "_owners",
    )

    def __init__(self, spec: UpstreamSpec) -> None:
        self.name = str(spec["name"])
        self.targets = tuple(Target.parse(t["url"], t.get("weight", 1)) for t in spec.get("targets") or ())
        self.connect_timeout: float | None = spec.get("connect_timeout")
        self.read_timeout: float | None = spec.get("read_timeout")
        self.algorithm = spec.get("algorithm") or "round_robin"
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
        self.hash_on = spec.get("hash_on") or "partner"
        if self.hash_on not in HASH_ON:
            raise ValueError(f"hash_on must be one of {', '.join(HASH_ON)}")
        self.hash_header = str(spec.get("hash_header") or "").strip().lower()
        if self.algorithm == "consistent_hash" and self.hash_on == "header" and not self.hash_header:
            raise ValueError("hashing on a header needs the header's name")
        breaker = spec.get("breaker") or {}
        self.breaker = BreakerSettings(
            threshold=int(breaker.get("threshold", 5)),
            window=float(breaker.get("window", 10.0)),
            base=float(breaker.get("ejection", 10.0)),
            ceiling=float(breaker.get("max_ejection", 300.0)),
            failure_statuses=frozenset(int(s) for s in breaker.get("statuses", (502, 503, 504))),
        )
        if self.breaker.window <= 0 or self.breaker.base <= 0 or self.breaker.ceiling < self.breaker.base:
            raise ValueError("breaker window and ejection must be positive, max_ejection at least ejection")
        self.health_check = HealthCheck.from_spec(spec.get("health_check"))
        budget = spec.get("retry_budget") or {}
        self.retry_budget = RetryBudget(float(budget.get("ratio", 0.2)), float(budget.get("per_second", 5.0)))
        # Fresh circuits; circuits.py swaps in the ones it keeps across snapshots.
        self.circuits = tuple(
            Circuit(self.name, t.authority, f"{self.name}|{t.url}", self.breaker) for t in self.targets
        )
        self.inflight = [0] * len(self.targets)
        self._schedule = tuple(smooth_weighted_schedule([t.weight for t in self.targets]))
        self._position = 0
        self._current = [0.0] * len(self.targets)
        self._ring, self._owners = hash_ring(self.targets) if self.algorithm == "consistent_hash" else ([], [])

    def inherit(self, previous: Upstream) -> None:
        """Carry this instance's running state over from the same upstream in the previous
        snapshot (the gateway recompiles every minute even without changes): requests in flight
        (the same list, so requests still running on the old object count down the new one's),
        the schedule position and the retry budget's window."""
        if tuple(t.url for t in previous.targets) == tuple(t.url for t in self.targets):
            self.inflight = previous.inflight
            self._current = previous._current
            self._position = previous._position % len(self._schedule) if self._schedule else 0
        old_budget = previous.retry_budget
        if (old_budget.ratio, old_budget.per_second) == (self.retry_budget.ratio, self.retry_budget.per_second):
            self.retry_budget = old_budget

    @property
    def routable(self) -> bool:
        """True if some target has a weight (ejected or not): there is something to try."""
        return bool(self._schedule)

    def pick(self, key: str | None = None, exclude: Collection[int] = (), now: float | None = None) -> Target | None:
        index = self.choose(key, exclude, now)
        return self.targets[index] if index is not None else None

    def choose(self, key: str | None = None, exclude: Collection[int] = (), now: float | None = None) -> int | None:
        """The index of the target for the next request, or None when no target admits one.
        ``key``: the consistent-hash value; ``exclude``: targets this request already tried."""
        if now is None:
            now = time.time()
        if self.algorithm == "least_requests":
            index = self._least_requests(exclude, now)
        elif self.algorithm == "consistent_hash" and key is not None:
            index = self._hashed(key, exclude, now)
        else:
            index = self._round_robin(exclude, now)
        if index is not None:
            self.circuits[index].chosen(now)
        return index

    def _round_robin(self, exclude: Collection[int], now: float) -> int | None:
        schedule = self._schedule
        length = len(schedule)
        position = self._position
        circuits = self.circuits
        for step in range(length):
            index = schedule[(position + step) % length]
            if index not in exclude and circuits[index].admits(now):
                self._position = (position + step + 1) % length
                return index
        return None

    def _least_requests(self, exclude: Collection[int], now: float) -> int | None:
        current = self._current
        best = -1
        total = 0.0
        for index, target in enumerate(self.targets):
            if target.weight <= 0 or index in exclude or not self.circuits[index].admits(now):
                continue
            effective = target.weight / (self.inflight[index] + 1)
            total += effective
            current[index] += effective
            if best < 0 or current[index] > current[best]:
                best = index
        if best < 0:
            return None
        current[best] -= total
        return best

    def _hashed(self, key: str, exclude: Collection[int], now: float) -> int | None:
        ring, owners = self._ring, self._owners
        if not ring:
            return None
        start = bisect_left(ring, hash64(key))
        length = len(ring)
        seen: set[int] = set()
        for step in range(length):
            index = owners[(start + step) % length]
            if index in seen:
                continue
            if index not in exclude and self.circuits[index].admits(now):
                return index
            seen.add(index)
            if len(seen) == len(self.targets):
                break
        return None

    def retry_after(self, now: float) -> float:
        """Seconds until the first ejected target may be tried again (for ``Retry-After``)."""
        waits = [c.until - now for c in self.circuits if not c.checked_down and c.until > now]
        return min(waits) if waits else 1.0
