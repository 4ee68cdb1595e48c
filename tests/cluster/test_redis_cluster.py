"""The local Redis Cluster launcher (localcluster/redis_cluster.py): built from real
redis-server nodes, every slot served, replicas in sync, a killed primary replaced by its replica,
and nothing left running after stop."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest

from localcluster.redis_cluster import RedisCluster

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]


def test_it_builds_a_cluster_whose_replica_takes_over_a_killed_primary(report: Callable[[str], None]) -> None:
    with RedisCluster(primaries=3, replicas=1, node_timeout_ms=1000).start() as cluster:
        assert len(cluster.nodes) == 6
        assert len(cluster.primaries()) == 3
        client = cluster.client()
        try:
            for n in range(50):
                client.set(f"k{n}", n)
            victim = cluster.primaries()[0]
            own_key = next(f"k{n}" for n in range(50) if client.get_node_from_key(f"k{n}").port == victim.port)
            # Every write reached the replica before the kill: WAIT for one replica.
            assert victim.query("WAIT", 1, 2000) == 1

            failover = cluster.kill_primary(victim.port)

            assert not victim.alive()
            assert failover.killed_port == victim.port
            assert cluster.node(failover.promoted_port).role() == "master"
            assert 0 < failover.seconds < 30
            report(
                f"Redis Cluster alone: failover after SIGKILL {failover.seconds:.2f} s (cluster-node-timeout 1000 ms)"
            )
            fresh = cluster.client()
            assert fresh.get(own_key) is not None
            fresh.close()

            cluster.restart(victim.port)
            cluster.wait_healthy(timeout=30)
            assert victim.role() == "slave"
        finally:
            client.close()
        pids = [node.process.pid for node in cluster.nodes if node.process is not None]
        base_dir = cluster.base_dir
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not base_dir.exists()


def test_it_refuses_fewer_than_three_primaries() -> None:
    with pytest.raises(ValueError, match="at least 3 primaries"):
        RedisCluster(primaries=2)
