"""A Redis Cluster primary killed under load: its replica takes over, the requests whose counters
live on that shard follow ``RATELIMIT_FAILURE_POLICY`` during the gap (``deny``: 503
``limiter_unavailable``; ``local``: admitted by each instance's own limiter), and exact limits
hold again after it. The gap is measured at Redis and at the client."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from proxy import configbus, usage
from tests import factories
from tests.cluster.conftest import ready_through
from tests.cluster.load import Load, summary

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NODE_TIMEOUT_MS = 2000
LIMIT = 20  # per hour, for the exactness check after the failover


def drill_plan(drill: Any) -> Any:
    return drill.partner.subscriptions.get().plan


def shard_primary_port(partner_id: int) -> int:
    """The port of the primary that holds the partner's counters (its hash tag's slot)."""
    names = configbus.keys()
    client = configbus.redis_client()
    return int(client.get_node_from_key(names.usage_key(names.partner_tag(partner_id))).port)


@pytest.mark.parametrize("policy", ["deny", "local"])
def test_a_killed_primary_is_replaced_and_limits_are_exact_again(
    policy: str,
    start_cluster: Callable[..., Any],
    make_drill: Callable[..., Any],
    report: Callable[[str], None],
) -> None:
    cluster = start_cluster(
        3, redis="cluster", redis_node_timeout_ms=NODE_TIMEOUT_MS, env={"RATELIMIT_FAILURE_POLICY": policy}
    )
    drill = make_drill(cluster)
    assert cluster.redis_cluster is not None
    victim_port = shard_primary_port(drill.partner.pk)
    # A partner whose counters live on another primary: never refused, whatever the policy.
    for n in range(64):
        bystander = factories.partner(slug=f"bystander-{n}")
        if shard_primary_port(bystander.pk) != victim_port:
            break
    factories.subscription(partner=bystander, product=drill.route.product, plan=drill_plan(drill))
    bystander_headers = {"Authorization": f"Bearer {factories.api_key(partner=bystander, name='by')[1]}"}
    for gateway in cluster.gateways:
        ready_through(gateway.url + "/status/200", bystander_headers)

    def status_200(n: int) -> tuple[str, str]:
        return "GET", f"/status/200?n={n}"

    load = Load(cluster.url, drill.headers, status_200, max_requests=20_000, seconds=120).start()
    other = Load(cluster.url, bystander_headers, status_200, max_requests=20_000, seconds=120, workers=2).start()
    load.wait_count(200)
    killed_at = time.time()
    failover = cluster.redis_cluster.kill_primary(victim_port)
    settle = killed_at + failover.seconds + 2.0  # clients' slot maps follow the new primary
    time.sleep(max(0.0, settle - time.time()))
    load.wait_count(len(load.outcomes) + 300)
    outcomes = load.finish()
    bystanders = other.finish()
    assert bystanders and all(o.ok for o in bystanders), summary(bystanders)

    refused = [o for o in outcomes if not o.ok]
    before = [o for o in outcomes if o.ended < killed_at]
    after = [o for o in outcomes if o.started > settle]
    assert before and all(o.ok for o in before)
    assert after and all(o.ok for o in after), summary(after)
    if policy == "deny":
        assert refused and {o.status for o in refused} == {503}
        at_client = f"503s from the kill until {max(o.ended for o in refused) - killed_at:.2f} s after it"
    else:
        assert not refused, summary(outcomes)
        at_client = "no request refused (each instance's local limiter admitted during the gap)"

    # Exact again: a fresh key of the same partner (counters on the promoted replica's shard).
    plan = factories.plan(slug="exact", per_hour=LIMIT)
    product = factories.product(slug="exact")
    factories.route(upstream=drill.route.upstream, name="exact", path="/exact", rewrite="/status/200", product=product)
    factories.subscription(partner=drill.partner, product=product, plan=plan)
    _key, secret = factories.api_key(partner=drill.partner, name="exact")
    headers = {"Authorization": f"Bearer {secret}"}
    for gateway in cluster.gateways:  # the key is the last change: with it, the route is there too
        ready_through(gateway.url + "/status/200", headers)
    statuses = [httpx.get(cluster.url + "/exact", headers=headers, timeout=5).status_code for _ in range(LIMIT + 5)]
    assert statuses.count(200) == LIMIT and statuses.count(429) == 5, statuses

    ok = sum(1 for o in outcomes if o.ok)
    counted = drill.wait_usage(ok, timeout=20)
    waiting = drill.in_redis()
    # A flush that was claiming or applying a batch on the killed primary leaves the batch to be
    # replayed once it is orphan_after (60 s) old; do now what any instance does then.
    usage.flush_usage(orphan_after=0)
    replayed = drill.usage()
    assert replayed["requests"] == ok, f"{replayed} for {ok} answered; before the replay {counted}, in Redis {waiting}"
    report(
        f"Redis primary :{failover.killed_port} killed (policy {policy}, cluster-node-timeout {NODE_TIMEOUT_MS} ms) "
        f"under load: {summary(outcomes)}; replica :{failover.promoted_port} primary and cluster_state:ok after "
        f"{failover.seconds:.2f} s; at the client {at_client}; a partner on another shard: {summary(bystanders)}; "
        f"per-hour limit {LIMIT} exact after it ({statuses.count(200)} admitted, {statuses.count(429)} refused); "
        f"usage rows {counted['requests']} requests for {ok} answered ({waiting} in Redis), "
        f"{replayed['requests']} after replaying orphaned batches"
    )
