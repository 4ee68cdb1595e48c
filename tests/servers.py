"""Real servers for tests: processes and in-thread ASGI servers on 127.0.0.1 ports.

Every process is stopped by its own PID; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import uvicorn

from proxy.gateway.redis_urls import sync_client
from proxy.gateway.vocabulary import RedisKeys

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, *, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s: {last}")


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.02) -> float:
    """Poll until ``predicate()`` is true; return the seconds it took. Fails after ``timeout``."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class Process:
    """A child process started by the test, stopped by its PID."""

    def __init__(
        self,
        args: list[str],
        *,
        env: Mapping[str, str] | None = None,
        health_url: str | None = None,
        log_name: str = "proc",
    ) -> None:
        self.args = args
        self.env = {**os.environ, "APIGW_TEST_CHILD": "1", **(env or {})}
        self.health_url = health_url
        self.log_path = ROOT / "var" / "test-logs" / f"{log_name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        if self.health_url:
            try:
                wait_for_http(self.health_url, proc=self.proc)
            except Exception:
                self.stop()
                raise RuntimeError(f"{self.args} failed to start:\n{self.output()}") from None
        return self

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def gateway_process(
    port: int,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    server: str = "uvicorn",
    extra_args: tuple[str, ...] = (),
) -> Process:
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "apigw.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "on",
        "--no-access-log",
        "--no-proxy-headers",
        "--loop",
        "uvloop",
        "--http",
        "proxy.gateway.edge:EdgeProtocol",
        "--workers",
        str(workers),
        *extra_args,
    ]
    proc = Process(
        args,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", **(env or {})},
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_name="gateway",
    )
    proc.port = port
    return proc


def demo_process(port: int) -> Process:
    return Process(
        [sys.executable, "-m", "demo", "--host", "127.0.0.1", "--port", str(port)],
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_name="demo",
    )


class ThreadServer:
    """An ASGI app served by uvicorn in a thread of the test process (for in-process apps
    whose state the test wants to reach, e.g. a Gateway fed a static snapshot)."""

    def __init__(self, app: Any, port: int | None = None, **config: Any) -> None:
        self.port = port or free_port()
        self.config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            loop="asyncio",
            proxy_headers=False,
            **config,
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("thread server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class TcpRelay:
    """A TCP relay in a thread: lets a test cut a process off from a service (the database)
    without stopping the service itself."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    def start(self) -> TcpRelay:
        if not self.thread.is_alive():
            self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)
        return self

    def cut(self) -> None:
        """Refuse new connections and drop open ones."""
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(5)

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@contextlib.contextmanager
def running(*servers: Any) -> Iterator[None]:
    started = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        yield
    finally:
        for server in reversed(started):
            server.stop() if hasattr(server, "stop") else server.close()


class RedisServer:
    """A redis-server of the test's own on a free port, so that stopping it disturbs nobody (the
    shared server is never stopped). It starts empty and persists nothing; its working directory
    (where a cluster node writes ``nodes.conf``) is a temporary one of its own; ``stop`` ends only
    its own PID, and ``start`` again brings it back empty on the same port.

    ``args`` go on the command line after the defaults (``"--cluster-enabled", "yes"``, a
    ``--maxmemory``...). With ``tls_cert`` and ``tls_key`` (PEM files; the certificate is also the
    CA clients trust) it listens with TLS only, ``url`` is ``rediss://`` and ``client_options`` hold
    what a redis-py client needs to connect.
    """

    def __init__(self, *args: str, tls_cert: Path | None = None, tls_key: Path | None = None) -> None:
        self.args = list(args)
        self.port = _cluster_port() if "--cluster-enabled" in self.args else free_port()
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.proc: Process | None = None
        self.dir: str | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    @property
    def client_options(self) -> dict[str, Any]:
        return {"ssl_ca_certs": str(self.tls_cert)} if self.tls else {}

    def command(self) -> list[str]:
        command = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        if self.tls:
            command += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            command += ["--tls-cert-file", str(self.tls_cert), "--tls-key-file", str(self.tls_key)]
            command += ["--tls-ca-cert-file", str(self.tls_cert)]
        else:
            command += ["--port", str(self.port)]
        return command + self.args

    def start(self) -> RedisServer:
        self.dir = tempfile.mkdtemp(prefix=f"apigw-redis-{self.port}-")
        self.proc = proc = Process(self.command(), log_name=f"redis-{self.port}").start()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, **self.client_options)
        popen = proc.proc
        assert popen is not None
        try:
            wait_until(lambda: popen.poll() is not None or pings(client), timeout=10, interval=0.05)
            up = popen.poll() is None
        except AssertionError:
            up = False
        finally:
            client.close()
        if not up:
            self.stop()
            raise RuntimeError(f"redis-server did not answer PING:\n{proc.output()}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _cluster_port() -> int:
    """A free port whose cluster bus port (10000 above it, so at most 55535) is free too."""
    for _ in range(100):
        port = free_port()
        if port <= 55535:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


def pings(client: redis.Redis) -> bool:
    """Whether the server answers PING now (False while it is down or starting)."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@dataclass(frozen=True)
class RedisBackend:
    """Where a test's gateways keep their shared state: the shared single Redis, or the session's
    local Redis Cluster (tests/conftest.py ``redis_backend``). ``env`` goes to gateway processes."""

    name: str
    url: str
    env: dict[str, str]

    @property
    def cluster(self) -> bool:
        return self.name == "cluster"

    def client(self) -> Any:
        """A synchronous client (redis-py ``RedisCluster`` on the cluster) for checks."""
        return sync_client(self.url, socket_connect_timeout=1.0, socket_timeout=2.0)

    def keys(self) -> RedisKeys:
        return RedisKeys(os.environ["REDIS_PREFIX"], cluster=self.cluster)


def cluster_url(seeds: list[tuple[str, int]]) -> str:
    """REDIS_URL of a cluster: every node a seed."""
    return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in seeds) + "/"
