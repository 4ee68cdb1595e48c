"""The retry budget (proxy/gateway/retry.py) on a fake clock."""

from __future__ import annotations

from proxy.gateway.retry import RetryBudget, RetryPolicy


def test_it_allows_ratio_retries_per_request_over_ten_seconds() -> None:
    budget = RetryBudget(ratio=0.2, per_second=0)
    for _ in range(100):
        budget.request(1000.0)
    granted = sum(budget.withdraw(1000.5) for _ in range(100))
    assert granted == 20


def test_the_per_second_floor_lets_a_quiet_upstream_retry() -> None:
    budget = RetryBudget(ratio=0.2, per_second=1)
    budget.request(0.0)
    assert sum(budget.withdraw(0.0) for _ in range(50)) == 10  # 1/s over the 10 s window


def test_the_budget_refills_as_the_window_moves() -> None:
    budget = RetryBudget(ratio=0.5, per_second=0)
    for _ in range(10):
        budget.request(0.0)
    assert sum(budget.withdraw(0.0) for _ in range(10)) == 5
    assert not budget.withdraw(5.0)
    for _ in range(10):
        budget.request(11.0)  # the first second has left the window
    assert sum(budget.withdraw(11.0) for _ in range(10)) == 5


def test_only_idempotent_methods_are_retried() -> None:
    policy = RetryPolicy(retries=2)
    assert all(policy.applies_to(m) for m in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"))
    assert not any(policy.applies_to(m) for m in ("POST", "PATCH"))
    assert not RetryPolicy(retries=0).applies_to("GET")
