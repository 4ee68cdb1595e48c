"""A rolling restart of every instance in turn, under load through nginx, loses nothing: no
request fails at the client, and the usage rows hold exactly the requests served."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.load import Load, summary

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def idempotent_mix(seq: int) -> tuple[str, str]:
    # nginx (like a cloud balancer) retries only idempotent methods on another instance.
    return ("PUT", f"/echo/{seq}") if seq % 5 == 0 else ("GET", f"/slow/0.02?n={seq}")


@pytest.mark.parametrize("redis", ["single", "cluster"])
def test_a_rolling_restart_fails_no_request_and_counts_every_one(
    redis: str, start_cluster: Callable[..., Any], make_drill: Callable[..., Any], report: Callable[[str], None]
) -> None:
    cluster = start_cluster(3, redis=redis)
    drill = make_drill(cluster)
    load = Load(cluster.url, drill.headers, idempotent_mix, max_requests=20_000, seconds=180).start()
    load.wait_count(100)
    took = []
    for gateway in cluster.gateways:
        old_pid = gateway.pid
        took.append(gateway.restart())
        assert gateway.pid != old_pid
        load.wait_count(len(load.outcomes) + 100)  # the restarted instance takes traffic again
    outcomes = load.finish()

    failed = [o for o in outcomes if not o.ok]
    assert outcomes and not failed, f"{summary(outcomes)}; first failures: {failed[:5]}"
    lines = {line.seq: line for line in cluster.lb.access_log() if line.seq.isdigit()}
    retried = sum(1 for o in outcomes if len(lines[str(o.seq)].upstream_ports) > 1)
    served_by = {g.port: 0 for g in cluster.gateways}
    for o in outcomes:
        served_by[lines[str(o.seq)].upstream_ports[-1]] += 1
    assert all(served_by.values()), served_by

    usage = drill.wait_usage(len(outcomes))
    assert usage["requests"] == len(outcomes)
    assert usage["status_2xx"] == len(outcomes)
    restarts = ", ".join(f"{t:.1f}" for t in took)
    report(
        f"rolling restart of 3 instances under load (Redis {redis}): {summary(outcomes)}; "
        f"nginx retried {retried} on another instance; restart (SIGTERM -> exit -> ready) {restarts} s; "
        f"usage rows {usage['requests']} requests / {usage['status_2xx']} 2xx = requests served"
    )
