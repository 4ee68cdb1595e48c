"""Passive health of one upstream target: a circuit breaker.

    closed ──(threshold failures in a row, within `window` s)──▶ open
    open ──(`until` passes)──▶ half-open: the next request is the probe
    half-open ──(probe succeeds)──▶ closed
    half-open ──(probe fails)──▶ open again, for twice as long (at most `ceiling`)

Failures are connection errors, timeouts and the upstream's ``failure_statuses`` (by default
502, 503, 504: the gateway-failure statuses; a 500 is an answer, not an outage). A success ends
a run of failures, so a busy target with an occasional error is never ejected, while a dead or
hanging one is ejected after ``threshold`` requests.

Only in-memory state, touched from the request path in O(1). Times are Unix seconds, not
monotonic, because circuits.py shares ``until`` with the other instances through Redis.
``listener`` hears every state change (metrics and that sharing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
# A probe whose outcome never came back (the client vanished mid-request) stops blocking the
# next probe after this long.
_PROBE_STALE = 30.0


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    threshold: int = 5  # failures in a row that open the circuit; 0: passive health off
    window: float = 10.0  # seconds the run of failures may span
    base: float = 10.0  # first ejection, seconds
    ceiling: float = 300.0  # longest ejection, seconds
    failure_statuses: frozenset[int] = frozenset({502, 503, 504})

    def ejection(self, openings: int) -> float:
        return float(min(self.base * 2 ** max(0, min(openings - 1, 30)), self.ceiling))


Listener = Callable[["Circuit", str, bool], None]  # (circuit, previous state, changed here?)


class Circuit:
    """The breaker of one target of one upstream. ``key`` names it in Redis."""

    __slots__ = (
        "upstream",
        "target",
        "key",
        "settings",
        "state",
        "failures",
        "first_failure",
        "until",
        "openings",
        "probe_started",
        "checked_down",
        "check_streak",
        "listener",
    )

    def __init__(self, upstream: str, target: str, key: str, settings: BreakerSettings) -> None:
        self.upstream = upstream
        self.target = target  # host:port, the label metrics and logs use
        self.key = key
        self.settings = settings
        self.state = CLOSED
        self.failures = 0
        self.first_failure = 0.0
        self.until = 0.0
        self.openings = 0
        self.probe_started = 0.0  # 0: no probe in flight
        # Active health checks (probes.py): down after failed checks, whatever the breaker says.
        self.checked_down = False
        self.check_streak = 0  # > 0 successes in a row, < 0 failures in a row
        self.listener: Listener | None = None

    def __repr__(self) -> str:
        return f"<Circuit {self.key} {self.state}>"

    # -- choosing ----------------------------------------------------------------------------
    def admits(self, now: float) -> bool:
        """May a request go to this target now? No side effects: balancers ask every target."""
        if self.checked_down:
            return False
        state = self.state
        if state == CLOSED:
            return True
        if state == OPEN:
            return now >= self.until
        return not self.probe_started or now - self.probe_started > _PROBE_STALE

    def chosen(self, now: float) -> None:
        """A request goes to this target; past ``until`` it is the half-open probe."""
        if self.state == CLOSED:
            return
        if self.state == OPEN:
            self._move(HALF_OPEN, local=True)
        self.probe_started = now

    # -- outcomes ----------------------------------------------------------------------------
    def success(self) -> None:
        self.failures = 0
        if self.state == HALF_OPEN:
            self.probe_started = 0.0
            self.close(local=True)

    def failure(self, now: float) -> None:
        state = self.state
        if state == HALF_OPEN:
            self.probe_started = 0.0
            self.open(now)
            return
        if state == OPEN or self.settings.threshold <= 0:
            return  # requests sent before it opened still finish and fail: nothing new
        if self.failures == 0 or now - self.first_failure > self.settings.window:
            self.failures = 1
            self.first_failure = now
        else:
            self.failures += 1
        if self.failures >= self.settings.threshold:
            self.open(now)

    def released(self) -> None:
        """The request's outcome is unknown (the client went away): let another probe go."""
        self.probe_started = 0.0

    def set_checked_down(self, down: bool) -> None:
        """The active health checks' verdict (probes.py)."""
        if down == self.checked_down:
            return
        self.checked_down = down
        if not down and self.state != CLOSED:
            self.close(local=True)
        elif self.listener is not None:
            self.listener(self, self.state, False)

    # -- transitions -------------------------------------------------------------------------
    def open(self, now: float) -> None:
        self.openings += 1
        self.until = now + self.settings.ejection(self.openings)
        self.failures = 0
        self.probe_started = 0.0
        self._move(OPEN, local=True, force=True)

    def close(self, *, local: bool) -> None:
        self.failures = 0
        self.openings = 0
        self.probe_started = 0.0
        self._move(CLOSED, local=local)

    def adopt(self, until: float, openings: int) -> None:
        """Another instance ejected this target until ``until`` (from circuits.py). An ejection
        this circuit already knew of (its own, or one it adopted and has since got over) is
        ignored, so re-reading the shared state cannot undo a recovery."""
        if until <= self.until:
            return
        self.until = until
        self.openings = max(self.openings, openings)
        self.failures = 0
        self.probe_started = 0.0
        self._move(OPEN, local=False, force=True)

    def _move(self, state: str, *, local: bool, force: bool = False) -> None:
        previous = self.state
        if previous == state and not force:
            return
        self.state = state
        if self.listener is not None:
            self.listener(self, previous, local)
