"""A Redis Cluster on loopback ports: N primaries with R replicas each, built the way an operator
would (``redis-server --cluster-enabled yes`` per node, then ``redis-cli --cluster create``).

Each node runs in a temporary directory of its own (its ``nodes.conf`` and log live there),
persists nothing, and is stopped by its PID. ``kill_primary`` SIGKILLs one primary and measures
how long the cluster takes to promote its replica and answer for every slot again.

From Python (pytest fixtures)::

    with RedisCluster(primaries=3, replicas=1).start() as cluster:
        cluster.seeds            # [("127.0.0.1", port), ...]
        cluster.url              # redis://127.0.0.1:<first primary>/0 (any node is a seed)
        cluster.cluster_url      # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,... (the platform's REDIS_URL)
        failover = cluster.kill_primary()
        failover.seconds         # SIGKILL -> replica promoted and cluster_state:ok everywhere

From the shell: ``python -m localcluster.redis_cluster --primaries 3 --replicas 1`` prints the seed
addresses and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.cluster import ClusterNode

from localcluster.processes import ManagedProcess, free_port, wait_until

HOST = "127.0.0.1"
SLOTS = 16384


@dataclass
class Failover:
    """What ``kill_primary`` observed."""

    killed_port: int
    promoted_port: int
    seconds: float  # SIGKILL until the replica is primary and every surviving node says cluster_state:ok


class RedisNode:
    """A redis-server with its own directory and port: a cluster node (with its cluster-bus port),
    or a plain Redis when ``node_timeout_ms`` is None."""

    def __init__(self, base_dir: Path, *, node_timeout_ms: int | None) -> None:
        self.port = free_port(HOST)
        # Redis 7 takes the bus port as an option: no need for port + 10000 to be free too.
        self.bus_port = free_port(HOST) if node_timeout_ms is not None else 0
        self.dir = base_dir / f"node-{self.port}"
        self.node_timeout_ms = node_timeout_ms
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{self.address}/0"

    def command(self) -> list[str]:
        command = ["redis-server", "--bind", HOST, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.dir)]
        if self.node_timeout_ms is not None:
            command += ["--cluster-enabled", "yes", "--cluster-port", str(self.bus_port)]
            command += ["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(self.node_timeout_ms)]
            # As docs/operations.md advises for production: while one shard fails over, the
            # others keep answering (the default "yes" makes every node refuse until it is over).
            command += ["--cluster-require-full-coverage", "no"]
        return command

    def start(self) -> RedisNode:
        """Start (or start again: the node keeps its ``nodes.conf``, so it rejoins the cluster)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(self.command(), log_path=self.dir / "redis.log", cwd=self.dir).start()
        return self

    def start_and_wait(self, timeout: float = 10.0) -> RedisNode:
        self.start()
        wait_until(self.settled, timeout=timeout, interval=0.05, what=f"{self.address} up")
        if not self.alive():
            raise RuntimeError(f"redis-server {self.address} exited:\n{self.process.output() if self.process else ''}")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_connect_timeout=0.5, socket_timeout=1.0)

    def query(self, *command: Any) -> Any:
        """One command on this node alone; None when it does not answer."""
        client = self.client()
        try:
            return client.execute_command(*command)
        except redis.RedisError:
            return None
        finally:
            client.close()

    def info(self, section: str) -> dict[str, Any]:
        client = self.client()
        try:
            return dict(client.info(section))
        except redis.RedisError:
            return {}
        finally:
            client.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def answers(self) -> bool:
        return self.query("PING") is not None

    def settled(self) -> bool:
        """Answering, or exited (a start that failed, e.g. its port was taken meanwhile)."""
        return not self.alive() or self.answers()

    def cluster_ok(self) -> bool:
        return self.info("cluster").get("cluster_enabled") == 1 and self._cluster_info().get("cluster_state") == "ok"

    def _cluster_info(self) -> dict[str, str]:
        raw = self.query("CLUSTER", "INFO")
        if raw is None:
            return {}
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def role(self) -> str | None:
        return self.info("replication").get("role")

    def synced_replica(self) -> bool:
        replication = self.info("replication")
        return (
            replication.get("role") == "slave"
            and replication.get("master_link_status") == "up"
            and not replication.get("master_sync_in_progress")
        )

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=10)


class RedisCluster:
    """``primaries`` primaries with ``replicas`` replicas each, on free loopback ports.

    ``node_timeout_ms`` is Redis' ``cluster-node-timeout`` (production default 15000): a primary
    unreachable that long is failed over, so it bounds the outage ``kill_primary`` measures.
    """

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        *,
        node_timeout_ms: int = 2000,
        base_dir: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        if primaries < 3:
            raise ValueError("a Redis Cluster needs at least 3 primaries")
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server and redis-cli are needed (Debian package redis-server)")
        self.primary_count = primaries
        self.replica_count = replicas
        self.node_timeout_ms = node_timeout_ms
        self.startup_timeout = startup_timeout
        self._own_dir = base_dir is None
        self.base_dir = base_dir or Path(tempfile.mkdtemp(prefix="apigw-redis-cluster-"))
        self.nodes: list[RedisNode] = []

    # -- addresses -------------------------------------------------------------------------------

    @property
    def seeds(self) -> list[tuple[str, int]]:
        """Every node's (host, port): a cluster client needs any one that answers."""
        return [(HOST, node.port) for node in self.nodes]

    @property
    def urls(self) -> list[str]:
        return [f"redis://{HOST}:{node.port}/0" for node in self.nodes]

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def cluster_url(self) -> str:
        """The platform's ``REDIS_URL`` for this cluster: every node a seed."""
        return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in self.seeds)

    def node(self, port: int) -> RedisNode:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def primaries(self) -> list[RedisNode]:
        """The nodes that serve slots now (this changes after a failover)."""
        return [node for node in self.nodes if node.alive() and node.role() == "master"]

    def replicas_of(self, primary: RedisNode) -> list[RedisNode]:
        found = []
        for node in self.nodes:
            if node is not primary and node.alive():
                replication = node.info("replication")
                if replication.get("role") == "slave" and replication.get("master_port") == primary.port:
                    found.append(node)
        return found

    def client(self, **options: Any) -> redis.RedisCluster:
        """A redis-py cluster client for checks and test data (the gateway brings its own)."""
        seeds = [ClusterNode(HOST, node.port) for node in self.nodes if node.alive()]
        return redis.RedisCluster(startup_nodes=seeds, **options)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> RedisCluster:
        try:
            total = self.primary_count * (1 + self.replica_count)
            self.nodes = [RedisNode(self.base_dir, node_timeout_ms=self.node_timeout_ms) for _ in range(total)]
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                wait_until(node.settled, timeout=10, interval=0.05, what=f"{node.address} up")
                if not node.alive():
                    raise RuntimeError(f"redis-server {node.address} exited:\n{self._log(node)}")
            self._create()
            self.wait_healthy(timeout=self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        # redis-cli takes the first `primaries` addresses as primaries and spreads the rest as
        # replicas; with every node on one host it warns about that and goes on (--cluster-yes).
        command = ["redis-cli", "--cluster", "create", *(n.address for n in self.nodes)]
        command += ["--cluster-replicas", str(self.replica_count), "--cluster-yes"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")

    def wait_healthy(self, timeout: float = 30.0) -> float:
        """Every live node says cluster_state:ok and knows every live node, every slot is served,
        and every replica has finished its sync. Returns the seconds waited."""

        def healthy() -> bool:
            live = [n for n in self.nodes if n.alive()]
            for node in live:
                info = node._cluster_info()
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(SLOTS):
                    return False
            primaries = [n for n in live if n.role() == "master"]
            if len(primaries) < self.primary_count:
                return False
            return all(n.synced_replica() for n in live if n not in primaries)

        return wait_until(healthy, timeout=timeout, interval=0.1, what="Redis Cluster healthy")

    def kill_primary(self, port: int | None = None, *, timeout: float = 60.0) -> Failover:
        """SIGKILL one primary (the first one serving slots, or the one on ``port``) and wait
        until a replica of it is primary and every surviving node says cluster_state:ok."""
        primaries = self.primaries()
        victim = self.node(port) if port is not None else primaries[0]
        if victim not in primaries:
            raise ValueError(f"{victim.address} is not a primary now")
        candidates = self.replicas_of(victim)
        if not candidates:
            raise RuntimeError(f"{victim.address} has no replica to take over")
        started = time.monotonic()
        victim.kill()

        promoted: list[RedisNode] = []

        def taken_over() -> bool:
            promoted[:] = [n for n in candidates if n.role() == "master"]
            if not promoted:
                return False
            return all(n.cluster_ok() for n in self.nodes if n.alive())

        wait_until(taken_over, timeout=timeout, interval=0.02, what=f"failover of {victim.address}")
        return Failover(victim.port, promoted[0].port, time.monotonic() - started)

    def restart(self, port: int) -> RedisNode:
        """Start a stopped or killed node again on its port; it rejoins (as a replica if its slots
        moved to another node meanwhile)."""
        node = self.node(port)
        if node.alive():
            raise ValueError(f"{node.address} is running")
        node.start()
        wait_until(node.answers, timeout=10, interval=0.05, what=f"{node.address} up")
        return node

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def _log(self, node: RedisNode) -> str:
        return node.process.output() if node.process is not None else ""

    def __enter__(self) -> RedisCluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def describe(self) -> str:
        lines = []
        for node in self.nodes:
            replication = node.info("replication") if node.alive() else {}
            role = {"master": "primary", "slave": "replica"}.get(replication.get("role", ""), "down")
            of = f" of {HOST}:{replication['master_port']}" if role == "replica" else ""
            lines.append(f"  {node.address}  {role}{of}  pid {node.process and node.process.pid}")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A local Redis Cluster on loopback ports; Ctrl-C stops it.")
    parser.add_argument("--primaries", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--node-timeout-ms", type=int, default=2000, help="cluster-node-timeout (failover delay)")
    parser.add_argument(
        "--kill-primary-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="drill: SIGKILL one primary after this many seconds and report the failover time",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with RedisCluster(args.primaries, args.replicas, node_timeout_ms=args.node_timeout_ms).start() as cluster:
        print(f"Redis Cluster up ({args.primaries} primaries x {args.replicas} replicas), nodes in {cluster.base_dir}:")
        print(cluster.describe())
        print("seeds: " + ",".join(f"{h}:{p}" for h, p in cluster.seeds))
        print("Ctrl-C stops it.", flush=True)
        if args.kill_primary_after is not None and not stop.wait(args.kill_primary_after):
            failover = cluster.kill_primary()
            print(
                f"killed primary {HOST}:{failover.killed_port}; {HOST}:{failover.promoted_port} took over "
                f"in {failover.seconds:.2f} s (cluster-node-timeout {args.node_timeout_ms} ms)"
            )
            print(cluster.describe(), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
