"""When does a quota run out at the current rate? Plain arithmetic, no Django."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Forecast:
    state: str  # "exhausted", "runs_out", "lasts", "idle"
    runs_out_at: datetime | None = None

    @property
    def text(self) -> str:
        if self.state == "exhausted":
            return "Used up for this period"
        if self.state == "runs_out" and self.runs_out_at is not None:
            return f"Runs out around {self.runs_out_at:%Y-%m-%d %H:%M} UTC at the current rate"
        if self.state == "lasts":
            return "Lasts until it resets at the current rate"
        return "No recent use"


def quota_runs_out(*, used: int, limit: int, rate_per_second: float, now: datetime, resets_at: datetime) -> Forecast:
    """``rate_per_second`` is the recent rate of requests that count against the quota."""
    remaining = limit - used
    if remaining <= 0:
        return Forecast("exhausted")
    if rate_per_second <= 0:
        return Forecast("idle")
    runs_out = now + timedelta(seconds=remaining / rate_per_second)
    if runs_out >= resets_at:
        return Forecast("lasts")
    return Forecast("runs_out", runs_out)


def recent_rate(*, requests: int, first_use: datetime | None, now: datetime, window: timedelta) -> float:
    """Requests per second over ``window``, or over the time since the first use in it when that is
    shorter (a partner who started yesterday is not averaged over a week); at least one hour, so
    one burst a minute ago does not predict the month."""
    if requests <= 0 or first_use is None:
        return 0.0
    span = min(window, max(now - first_use, timedelta(hours=1)))
    return requests / span.total_seconds()
