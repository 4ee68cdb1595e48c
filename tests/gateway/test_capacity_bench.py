"""bench/capacity.py drives the limiter script with the gateway's own keys and arguments: the
calls it builds are admitted and counted by the script in the tree, one call's keys share one
cluster slot, and Redis' CPU per call is read back (so the capacity figures can be re-run after
the script or the key layout changes)."""

from __future__ import annotations

import argparse
import time

from redis.crc import key_slot

from bench import capacity
from proxy.gateway.vocabulary import RedisKeys


def test_the_calls_are_the_gateways_and_share_a_slot_on_a_cluster() -> None:
    calls = capacity.calls_for(RedisKeys(capacity.PREFIX, cluster=True), keys=40, partners=8, now=time.time())

    assert len(calls) == 40
    for call in calls:
        assert len({key_slot(k.encode()) for k in call.keys}) == 1
        assert call.keys[-1].endswith("usage") and call.check.usage_prefix and call.check.last_used_field
    assert len({call.keys[0] for call in calls}) == 8  # the plan counts per partner


def test_a_small_run_on_its_own_redis_measures_cpu_per_call() -> None:
    args = argparse.Namespace(
        requests=600,
        batch=5,
        keys=20,
        partners=4,
        deltas=2,
        pipeline=20,  # 100 requests per round trip
        seconds=30.0,
        warm=True,
        redis_benchmark=False,
        script_text=capacity.SCRIPT,
    )

    result = capacity.single(args)

    limiter = result["limiter"]
    assert limiter["requests"] == 600  # every request admitted (drive raises on a refusal)
    assert limiter["calls"] == 120 and limiter["requests_per_call"] == 5  # five requests per EVALSHA
    assert limiter["redis_cpu_us_per_request"] > 0 and limiter["requests_per_s_per_core"] > 0
    assert limiter["commands_inside_per_request"] > 0  # the script's own commands, counted by Redis
    assert result["keys_per_request"] == 4  # plan minute + day quota + route second + usage hash
    assert result["websocket_leases"]["redis_cpu_us_per_lease_renewal"] > 0
