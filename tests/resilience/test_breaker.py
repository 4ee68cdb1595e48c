"""The circuit breaker's states (proxy/gateway/breaker.py), on a fake clock."""

from __future__ import annotations

from proxy.gateway.breaker import CLOSED, HALF_OPEN, OPEN, BreakerSettings, Circuit


def circuit(**settings: float) -> Circuit:
    return Circuit("up", "10.0.0.1:80", "up|http://10.0.0.1:80", BreakerSettings(**settings))  # type: ignore[arg-type]


def test_it_opens_after_threshold_failures_in_a_row() -> None:
    c = circuit(threshold=3, window=10, base=5)
    c.failure(100.0)
    c.failure(100.1)
    assert c.state == CLOSED and c.admits(100.2)
    c.failure(100.2)
    assert c.state == OPEN
    assert c.until == 105.2
    assert not c.admits(105.1)


def test_a_success_ends_the_run_of_failures() -> None:
    c = circuit(threshold=3)
    for _ in range(10):
        c.failure(1.0)
        c.failure(1.0)
        c.success()
    assert c.state == CLOSED


def test_failures_spread_wider_than_the_window_do_not_add_up() -> None:
    c = circuit(threshold=3, window=1.0)
    c.failure(0.0)
    c.failure(0.5)
    c.failure(1.6)  # starts a new run
    c.failure(2.0)
    assert c.state == CLOSED
    c.failure(2.1)
    assert c.state == OPEN


def test_after_the_ejection_one_probe_goes_and_its_success_closes() -> None:
    c = circuit(threshold=1, base=5)
    c.failure(0.0)
    assert c.admits(5.0)
    c.chosen(5.0)
    assert c.state == HALF_OPEN
    assert not c.admits(5.1)  # one probe at a time
    c.success()
    assert c.state == CLOSED and c.admits(5.2) and c.openings == 0


def test_a_failed_probe_doubles_the_ejection_up_to_the_ceiling() -> None:
    c = circuit(threshold=1, base=2, ceiling=5)
    c.failure(0.0)
    assert c.until == 2.0
    c.chosen(2.0)
    c.failure(2.0)
    assert c.state == OPEN and c.until == 6.0
    c.chosen(6.0)
    c.failure(6.0)
    assert c.until == 11.0  # 8 s capped at 5


def test_a_probe_whose_outcome_never_came_back_stops_blocking() -> None:
    c = circuit(threshold=1, base=1)
    c.failure(0.0)
    c.chosen(1.0)
    assert not c.admits(2.0)
    c.released()
    assert c.admits(2.0)
    c.chosen(2.0)
    assert not c.admits(3.0)
    assert c.admits(40.0)  # a probe silent for 30 s is given up on


def test_failures_of_requests_sent_before_it_opened_change_nothing() -> None:
    c = circuit(threshold=2, base=10)
    c.failure(0.0)
    c.failure(0.0)
    until = c.until
    c.failure(0.5)
    assert c.until == until and c.openings == 1


def test_threshold_zero_never_opens() -> None:
    c = circuit(threshold=0)
    for _ in range(100):
        c.failure(0.0)
    assert c.state == CLOSED


def test_an_adopted_ejection_opens_and_an_old_one_is_ignored() -> None:
    changes: list[tuple[str, str, bool]] = []
    c = circuit(threshold=5)
    c.listener = lambda circ, previous, local: changes.append((previous, circ.state, local))
    c.adopt(50.0, 2)
    assert c.state == OPEN and c.until == 50.0 and c.openings == 2
    assert changes == [(CLOSED, OPEN, False)]
    c.close(local=False)
    c.adopt(50.0, 2)  # re-read from Redis after the recovery: already known
    assert c.state == CLOSED
    c.adopt(70.0, 3)
    assert c.state == OPEN


def test_the_listener_hears_local_changes() -> None:
    changes: list[tuple[str, str, bool]] = []
    c = circuit(threshold=1, base=1)
    c.listener = lambda circ, previous, local: changes.append((previous, circ.state, local))
    c.failure(0.0)
    c.chosen(1.0)
    c.success()
    assert changes == [(CLOSED, OPEN, True), (OPEN, HALF_OPEN, True), (HALF_OPEN, CLOSED, True)]


def test_checked_down_keeps_it_out_whatever_the_breaker_says() -> None:
    c = circuit()
    c.set_checked_down(True)
    assert not c.admits(0.0)
    c.set_checked_down(False)
    assert c.admits(0.0)
