"""The whole platform as a cluster on one machine: N gateway processes in production mode behind
nginx, Redis (a Redis Cluster, or one Redis), PostgreSQL and the demo appliance upstream.

``make cluster`` runs it from the shell (``localcluster/__main__.py``); the failure drills in
tests/cluster/ start it from fixtures with the test database and a Redis namespace of their own::

    cluster = LocalCluster(instances=3, redis="single", database_url=..., env={...}).start()
    cluster.lb.url                     # nginx
    cluster.gateways[0].url            # one instance, directly
    cluster.gateways[0].restart()      # SIGTERM, wait for the exit, start, wait ready
    cluster.gateways[1].kill()         # SIGKILL
    cluster.stop()                     # everything it started, by PID

Every process listens on 127.0.0.1 only and is stopped by its own PID; an instance keeps its port
across restarts, so nginx's upstream list never changes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from localcluster.nginx import LoadBalancer
from localcluster.processes import ManagedProcess, free_port, wait_until
from localcluster.redis_cluster import RedisCluster, RedisNode

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
RedisMode = Literal["cluster", "single"]


def gateway_command(port: int, *, workers: int = 1, drain_seconds: int = 20) -> list[str]:
    """The server command of the image's CMD and ``runplatform``: uvicorn with uvloop through the
    gateway's edge protocol (framing limits before buffering), draining on SIGTERM."""
    return [
        sys.executable, "-m", "uvicorn", "apigw.asgi:application",
        "--host", HOST, "--port", str(port), "--workers", str(workers),
        "--loop", "uvloop", "--http", "proxy.gateway.edge:EdgeProtocol", "--lifespan", "on",
        "--no-access-log", "--no-server-header", "--no-date-header", "--no-proxy-headers",
        "--timeout-graceful-shutdown", str(drain_seconds),
    ]  # fmt: skip


def production_env(*, secret_key: str, database_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    """Production settings, as a deployment behind a load balancer sets them, less TLS: nginx
    listens on plain HTTP on loopback, so no HTTPS redirect and no secure-only cookies (the admin
    login would not work otherwise)."""
    return {
        "DJANGO_SETTINGS_MODULE": "apigw.settings",
        "DEBUG": "false",
        "SECRET_KEY": secret_key,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "GATEWAY_TRUSTED_PROXIES": f"{HOST}/32",  # nginx: X-Forwarded-For names the client
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_HSTS_SECONDS": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "APIGW_DEV_ENV": "",  # never the checkout's var/dev.env
    }


class GatewayInstance:
    """One gateway process on a port of its own; ``restart`` brings it back on the same port."""

    def __init__(self, index: int, port: int, env: Mapping[str, str], log_dir: Path, *, workers: int = 1) -> None:
        self.index = index
        self.port = port
        self.env = dict(env)
        self.log_dir = log_dir
        self.workers = workers
        self.process: ManagedProcess | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.popen is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def start(self) -> GatewayInstance:
        self.starts += 1
        drain = int(self.env.get("GATEWAY_DRAIN_SECONDS", "20"))
        self.process = ManagedProcess(
            gateway_command(self.port, workers=self.workers, drain_seconds=drain),
            env=self.env,
            cwd=ROOT,
            log_path=self.log_dir / f"gateway-{self.index}.log",
        ).start()
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> float:
        process = self.process

        def up() -> bool:
            if process is None or not process.alive():
                output = process.output() if process is not None else ""
                raise RuntimeError(f"gateway {self.index} on :{self.port} exited:\n{output}")
            return self.ready()

        return wait_until(up, timeout=timeout, interval=0.05, what=f"gateway {self.index} ready")

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM: the instance drains (docs/operations.md, graceful shutdown) and exits."""
        return self.process.stop(signal.SIGTERM, timeout=timeout) if self.process is not None else None

    def kill(self) -> None:
        """SIGKILL: no drain, no final usage flush, leases left to expire."""
        if self.process is not None:
            self.process.kill()

    def restart(self, timeout: float = 60.0) -> float:
        """SIGTERM, wait for the exit, start on the same port, wait ready. Returns the seconds."""
        started = time.monotonic()
        self.stop()
        # The port is free once the process is gone; wait for it in case a socket lingers.
        wait_until(lambda: _port_free(self.port), timeout=10, interval=0.05, what=f"port {self.port} free")
        self.start().wait_ready(timeout)
        return time.monotonic() - started


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


class LocalCluster:
    """Start with ``start()``, stop with ``stop()`` (or use it as a context manager).

    ``redis``: ``"cluster"`` starts a Redis Cluster (``redis_primaries`` × (1 + ``redis_replicas``)
    nodes) plus one plain Redis for the channel layer (channels-redis speaks no Cluster), unless
    ``channel_redis_url`` names one that runs already (the tests' own, which the test process
    reaches too); ``"single"`` starts one plain Redis; ``redis_url`` instead uses a Redis that
    already runs (the tests' own namespace on the machine's Redis). ``database_url`` must name a
    migrated database; ``prepare`` migrates it, collects the static files and loads the demo
    configuration (``loaddemo``: routes to the demo upstream, a demo key, the admin login) first.
    """

    def __init__(
        self,
        instances: int = 3,
        *,
        database_url: str,
        redis: RedisMode = "cluster",
        redis_url: str | None = None,
        channel_redis_url: str | None = None,
        redis_prefix: str = "apigw:",
        redis_primaries: int = 3,
        redis_replicas: int = 1,
        redis_node_timeout_ms: int = 2000,
        secret_key: str | None = None,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        lb_port: int = 0,
        demo: bool = True,
        prepare: bool = False,
        workdir: Path | None = None,
        var_dir: Path | None = None,
    ) -> None:
        if instances < 1:
            raise ValueError("at least one gateway instance")
        self.instance_count = instances
        self.database_url = database_url
        self.redis_mode = redis
        self.given_redis_url = redis_url
        self.given_channel_redis_url = channel_redis_url
        self.redis_prefix = redis_prefix
        self.redis_primaries = redis_primaries
        self.redis_replicas = redis_replicas
        self.redis_node_timeout_ms = redis_node_timeout_ms
        self.secret_key = secret_key or secrets.token_urlsafe(48)
        self.extra_env = dict(env or {})
        self.workers = workers
        self.lb_port = lb_port
        self.with_demo = demo
        self.prepare = prepare
        self._own_dir = workdir is None
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="apigw-cluster-"))
        self.var_dir = var_dir or self.dir / "var"  # loaddemo's admin password and demo key
        self.demo_output = ""
        self.redis_cluster: RedisCluster | None = None
        self.redis_nodes: list[RedisNode] = []  # plain Redis servers we started
        self.demo: ManagedProcess | None = None
        self.demo_port = 0
        self.gateways: list[GatewayInstance] = []
        self.lb: LoadBalancer | None = None
        self.redis_url = ""
        self.channel_redis_url = ""

    # -- pieces ----------------------------------------------------------------------------------

    @property
    def demo_url(self) -> str:
        return f"http://{HOST}:{self.demo_port}"

    @property
    def url(self) -> str:
        assert self.lb is not None, "not started"
        return self.lb.url

    def env(self) -> dict[str, str]:
        """The environment of every platform process of this cluster (gateways, manage.py)."""
        base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "APIGW_TEST_CHILD")}
        env = base | production_env(
            secret_key=self.secret_key,
            database_url=self.database_url,
            redis_url=self.redis_url,
            redis_prefix=self.redis_prefix,
        )
        if self.channel_redis_url:
            env["CHANNEL_REDIS_URL"] = self.channel_redis_url
        env["APIGW_VAR_DIR"] = str(self.var_dir)
        return env | self.extra_env

    def manage(self, *args: str, timeout: float = 300) -> str:
        """``manage.py <args>`` against this cluster's database and Redis; its output."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def _start_redis(self) -> None:
        if self.given_redis_url is not None:
            self.redis_url = self.channel_redis_url = self.given_redis_url
            return
        if self.redis_mode == "cluster":
            self.redis_cluster = RedisCluster(
                self.redis_primaries,
                self.redis_replicas,
                node_timeout_ms=self.redis_node_timeout_ms,
                base_dir=self.dir / "redis-cluster",
            ).start()
            self.redis_url = self.redis_cluster.cluster_url
            # channels-redis needs a plain Redis (settings: CHANNEL_REDIS_URL).
            if self.given_channel_redis_url is not None:
                self.channel_redis_url = self.given_channel_redis_url
            else:
                channel = RedisNode(self.dir / "redis", node_timeout_ms=None).start_and_wait()
                self.redis_nodes.append(channel)
                self.channel_redis_url = channel.url
        else:
            single = RedisNode(self.dir / "redis", node_timeout_ms=None).start_and_wait()
            self.redis_nodes.append(single)
            self.redis_url = single.url

    def _start_demo(self) -> None:
        self.demo_port = free_port(HOST)
        self.demo = ManagedProcess(
            [sys.executable, "-m", "demo", "--host", HOST, "--port", str(self.demo_port)],
            cwd=ROOT,
            log_path=self.dir / "logs" / "demo.log",
        ).start()

        def up() -> bool:
            assert self.demo is not None
            if not self.demo.alive():
                raise RuntimeError(f"demo upstream exited:\n{self.demo.output()}")
            try:
                return httpx.get(self.demo_url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=20, interval=0.05, what="demo upstream")

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalCluster:
        try:
            self._start_redis()
            if self.with_demo:
                self._start_demo()
            if self.prepare:
                self.manage("migrate", "--noinput")
                self.manage("collectstatic", "--noinput", "--verbosity", "0")
                if self.with_demo:
                    self.demo_output = self.manage("loaddemo", "--upstream-url", self.demo_url)
            env = self.env()
            self.gateways = [
                GatewayInstance(i, free_port(HOST), env, self.dir / "logs", workers=self.workers)
                for i in range(self.instance_count)
            ]
            for gateway in self.gateways:
                gateway.start()
            for gateway in self.gateways:
                gateway.wait_ready()
            self.lb = LoadBalancer(self.dir / "nginx", [g.port for g in self.gateways], port=self.lb_port).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Everything this cluster started, by PID: the balancer first (no new traffic), then
        the gateways together (each drains), then the upstream and Redis."""
        if self.lb is not None:
            self.lb.stop()
        for gateway in self.gateways:
            if gateway.process is not None:
                gateway.process.send(signal.SIGTERM)
        for gateway in self.gateways:
            gateway.stop()
        if self.demo is not None:
            self.demo.stop(timeout=10)
        if self.redis_cluster is not None:
            self.redis_cluster.stop()
        for node in self.redis_nodes:
            node.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        return {
            "load_balancer": self.lb.url if self.lb else None,
            "gateways": [{"url": g.url, "pid": g.pid} for g in self.gateways],
            "redis_url": self.redis_url,
            "channel_redis_url": self.channel_redis_url,
            "database_url": self.database_url,
            "demo_upstream": self.demo_url if self.demo else None,
            "logs": str(self.dir / "logs"),
        }
