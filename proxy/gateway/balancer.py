"""Choosing a target among an upstream's targets."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import gcd
from typing import Any
from urllib.parse import urlsplit

# A weighted schedule longer than this is scaled down: the order stays smooth and the shares
# stay within 1/_MAX_SCHEDULE of the configured ones.
_MAX_SCHEDULE = 1000


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


class Upstream:
    """A compiled upstream: its targets and a round-robin cursor over the weighted schedule."""

    __slots__ = ("name", "targets", "connect_timeout", "read_timeout", "_schedule", "_cursor")

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.name = str(spec["name"])
        self.targets = tuple(Target.parse(t["url"], t.get("weight", 1)) for t in spec.get("targets") or ())
        self.connect_timeout: float | None = spec.get("connect_timeout")
        self.read_timeout: float | None = spec.get("read_timeout")
        self._schedule = tuple(self.targets[i] for i in smooth_weighted_schedule([t.weight for t in self.targets]))
        self._cursor = itertools.cycle(self._schedule) if self._schedule else None

    def pick(self) -> Target | None:
        return next(self._cursor) if self._cursor is not None else None
