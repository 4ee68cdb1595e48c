"""Bounded load for the resilience tests: a few threads, a request cap and a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx


def run_load(
    url: str,
    *,
    seconds: float,
    threads: int = 8,
    max_requests: int = 5_000,
    method: str = "GET",
    events: tuple[tuple[float, Callable[[], object]], ...] = (),
) -> list[tuple[int, str]]:
    """(status, backend name) of every request; status 0 for a transport error. ``events``:
    (seconds after the start, callable) run by the driver thread while the load goes on."""
    results: list[tuple[int, str]] = []
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + seconds

    def worker() -> None:
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline:
                with lock:
                    if len(results) >= max_requests:
                        return
                try:
                    response = client.request(method, url)
                    name = response.json().get("name", "") if response.status_code == 200 else response.text
                    outcome = (response.status_code, name)
                except httpx.HTTPError as exc:
                    outcome = (0, repr(exc))
                with lock:
                    results.append(outcome)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for at, event in sorted(events, key=lambda e: e[0]):
        time.sleep(max(0.0, started + at - time.monotonic()))
        event()
    for thread in workers:
        thread.join(timeout=seconds + 15)
    return results
