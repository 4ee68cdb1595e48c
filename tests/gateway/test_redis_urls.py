"""REDIS_URL means one thing to every client: the limiter's own connection (redis_protocol.py) reaches the
server, database and user that redis-py (the flusher, django-redis, channels-redis) reaches.

Each test runs redis-servers of its own (passwords, ACL users, TLS); the shared one is never
reconfigured.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from django.db.models import Sum
from redis import asyncio as aioredis
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy import services
from proxy.gateway.ratelimit import Check, Limiter
from proxy.gateway.redis_protocol import ScriptConnection
from proxy.gateway.vocabulary import RedisKeys
from proxy.models import ApiProduct, Plan, Route, Target, Upstream, UsageHourly
from tests.conftest import subprocess_database_url
from tests.servers import free_port, gateway_process, wait_until

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


class OwnRedis:
    """A redis-server of the test's own, plain or TLS-only, stopped by its PID."""

    def __init__(self, *args: str, tls_dir: Path | None = None) -> None:
        self.port = free_port()
        self.tls_dir = tls_dir
        listen = ["--port", str(self.port)]
        if tls_dir is not None:
            listen = [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(tls_dir / "cert.pem"),
                "--tls-key-file",
                str(tls_dir / "key.pem"),
                "--tls-ca-cert-file",
                str(tls_dir / "cert.pem"),
                "--tls-auth-clients",
                "no",
            ]
        self.proc = subprocess.Popen(
            ["redis-server", *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(self._listening, timeout=5)
        except BaseException:
            self.stop()
            raise

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    @property
    def ca(self) -> str:
        assert self.tls_dir is not None
        return str(self.tls_dir / "cert.pem")

    def url(self, userinfo: str = "", path: str = "/0", query: str = "") -> str:
        scheme = "rediss" if self.tls_dir is not None else "redis"
        at = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{at}127.0.0.1:{self.port}{path}{query}"

    def admin(self, db: int = 0, password: str | None = None) -> redis.Redis:
        if self.tls_dir is not None:
            return redis.Redis(
                host="127.0.0.1", port=self.port, db=db, password=password, ssl=True, ssl_ca_certs=self.ca
            )
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=password)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


@pytest.fixture
def own_redis() -> Iterator[Callable[..., OwnRedis]]:
    servers: list[OwnRedis] = []

    def start(*args: str, tls_dir: Path | None = None) -> OwnRedis:
        servers.append(OwnRedis(*args, tls_dir=tls_dir))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for 127.0.0.1 (an IP SAN: hostname checking is on by default)."""
    path = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(path / "key.pem"),
            "-out",
            str(path / "cert.pem"),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return path


def run(conn: ScriptConnection, *commands: list[Any]) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return await conn.execute(commands)
        finally:
            conn.close()

    return asyncio.run(go())


def run_twice(conn: ScriptConnection, *commands: list[Any]) -> list[BaseException | list[Any]]:
    """Two batches on one connection object, in one event loop, each result or error kept."""

    async def go() -> list[BaseException | list[Any]]:
        results = await asyncio.gather(conn.execute(commands), return_exceptions=True)
        results += await asyncio.gather(conn.execute(commands), return_exceptions=True)
        conn.close()
        return results

    return asyncio.run(go())


def connected_clients(client: redis.Redis) -> int:
    return int(client.info("clients")["connected_clients"])


# --- the URL means what it means to redis-py --------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379?db=3",
        "redis://127.0.0.1:6379/3",
        "redis://127.0.0.1:6379/2?db=3",
        "redis://localhost",
        "redis://alice:p%40ss@redis.internal:6380/4",
        "redis://:only-a-password@127.0.0.1/1",
        "rediss://127.0.0.1:6380/5?ssl_cert_reqs=none",
        "unix:///run/redis.sock?db=6",
    ],
)
def test_it_reads_a_url_as_redis_py_does(url: str) -> None:
    conn = ScriptConnection(url)
    theirs = aioredis.Redis.from_url(url).connection_pool.make_connection()
    assert conn.db == int(theirs.db)
    assert (conn.username, conn.password) == (theirs.username, theirs.password)
    assert conn.path == getattr(theirs, "path", None)
    if conn.path is None:
        assert (conn.host, conn.port) == (theirs.host, theirs.port)  # type: ignore[attr-defined]
    assert (conn.ssl is not None) == url.startswith("rediss://")


@pytest.mark.parametrize("shape", ["query", "path"])
def test_the_database_is_the_one_the_url_names(own_redis: Callable[..., OwnRedis], shape: str) -> None:
    server = own_redis()
    url = server.url(path="", query="?db=3") if shape == "query" else server.url(path="/3")
    assert run(ScriptConnection(url), ["SET", "written-by", "limiter"]) == [b"OK"]
    assert redis.Redis.from_url(url).get("written-by") == b"limiter"  # what the flusher reads
    assert server.admin(db=0).dbsize() == 0


def test_a_wrong_password_is_refused_and_the_connection_closed(own_redis: Callable[..., OwnRedis]) -> None:
    server = own_redis("--requirepass", "s3cret")
    admin = server.admin(password="s3cret")
    results = run_twice(ScriptConnection(server.url(":wrong")), ["SET", "k", "v"])
    assert all(isinstance(result, AuthenticationError) for result in results)  # twice refused, never NOAUTH replies
    wait_until(lambda: connected_clients(admin) == 1, timeout=5)  # only the admin: nothing left open
    assert run(ScriptConnection(server.url(":s3cret")), ["SET", "k", "v"]) == [b"OK"]


def test_a_failed_select_is_not_reused_in_database_zero(own_redis: Callable[..., OwnRedis]) -> None:
    server = own_redis("--databases", "4")
    results = run_twice(ScriptConnection(server.url(path="/9")), ["SET", "k", "v"])
    assert all(isinstance(result, RedisConnectionError) for result in results)
    assert server.admin(db=0).dbsize() == 0  # the half-set-up connection counted nothing in DB 0


def test_an_acl_user_with_a_url_encoded_password(own_redis: Callable[..., OwnRedis]) -> None:
    server = own_redis()
    password = "p@ss:w/rd%"
    server.admin().acl_setuser(
        "limiter", enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"], reset=True
    )
    url = server.url(f"limiter:{quote(password, safe='')}", path="/2")
    assert run(ScriptConnection(url), ["ACL", "WHOAMI"], ["SET", "k", "v"]) == [b"limiter", b"OK"]
    assert server.admin(db=2).get("k") == b"v"
    with pytest.raises(AuthenticationError):
        run(ScriptConnection(server.url("limiter:wrong")), ["PING"])


def test_tls_with_the_servers_certificate(own_redis: Callable[..., OwnRedis], tls_dir: Path) -> None:
    server = own_redis(tls_dir=tls_dir)
    url = server.url(path="/2", query=f"?ssl_ca_certs={server.ca}")
    assert run(ScriptConnection(url), ["SET", "k", "over-tls"]) == [b"OK"]
    assert redis.Redis.from_url(url).get("k") == b"over-tls"
    # The certificate is verified by default, as redis-py does; ssl_cert_reqs=none opts out.
    with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        run(ScriptConnection(server.url()), ["PING"])
    assert run(ScriptConnection(server.url(query="?ssl_cert_reqs=none")), ["PING"]) == [b"PONG"]


def test_the_limiter_script_runs_over_tls(own_redis: Callable[..., OwnRedis], tls_dir: Path) -> None:
    server = own_redis(tls_dir=tls_dir)
    url = server.url(query=f"?ssl_ca_certs={server.ca}")

    async def scenario() -> list[Any]:
        conn = ScriptConnection(url)
        batcher = Limiter(conn, RedisKeys("t:")).batcher
        replies = await asyncio.gather(*(batcher.call(Check([], [], "", "")) for _ in range(3)))
        conn.close()
        return replies

    assert asyncio.run(scenario()) == [[1, 0, -1, 0, 0]] * 3


# --- end to end: what the limiter counts is what the flusher moves into the database ---------


@pytest.fixture
def key(demo_upstream: str) -> str:
    upstream = Upstream.objects.create(name="demo")
    Target.objects.create(upstream=upstream, url=demo_upstream)
    product = ApiProduct.objects.create(name="Appliances", slug="appliances")
    Route.objects.create(name="appliances", upstream=upstream, path="/api/v1", product=product, auth="key")
    plan = Plan.objects.create(name="Small", slug="small", per_minute=1000)
    partner = services.partner_get_or_create(slug="hana")
    services.subscription_set(partner=partner, product=product, plan=plan)
    return services.api_key_create(partner=partner, name="k")[1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("tls", [False, True], ids=["db-in-query", "tls-db-in-path"])
def test_what_the_limiter_counts_is_what_the_flusher_reads(
    own_redis: Callable[..., OwnRedis], tls_dir: Path, key: str, tls: bool
) -> None:
    if tls:
        server = own_redis(tls_dir=tls_dir)
        url, db = server.url(path="/5", query=f"?ssl_ca_certs={server.ca}"), 5
    else:
        server = own_redis()
        url, db = server.url(path="", query="?db=3"), 3
    env = {"DATABASE_URL": subprocess_database_url(), "REDIS_URL": url, "USAGE_FLUSH_SECONDS": "0.5"}
    gateway = gateway_process(free_port(), env=env).start()
    try:
        base = f"http://127.0.0.1:{gateway.port}"
        responses = [httpx.get(base + "/api/v1/appliances", headers={"X-API-Key": key}) for _ in range(3)]
        assert [r.status_code for r in responses] == [200] * 3
        assert responses[-1].headers["ratelimit-remaining"] == "997"  # counted in Redis, not locally

        def flushed() -> int:
            return int(UsageHourly.objects.aggregate(n=Sum("requests"))["n"] or 0)

        wait_until(lambda: flushed() >= 3, timeout=15, interval=0.2)
        assert flushed() == 3
        prefix = os.environ["REDIS_PREFIX"].encode()
        assert not [k for k in server.admin(db=0).keys() if k.startswith(prefix)] or db == 0
        assert any(k.startswith(prefix) for k in server.admin(db=db).keys())
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.output()


def test_a_url_redis_py_cannot_read_stops_start_up() -> None:
    from tests.apigw.test_settings import check

    result = check(DEBUG="true", REDIS_URL="redis://127.0.0.1:6379?db=three")
    assert result.returncode != 0
    assert "REDIS_URL is not a valid Redis URL: Invalid value for 'db'" in result.stderr


def test_a_batch_cancelled_on_the_wire_leaves_no_reply_for_the_next(own_redis: Callable[..., OwnRedis]) -> None:
    server = own_redis()

    async def scenario() -> list[Any]:
        conn = ScriptConnection(server.url(), timeout=5)
        await conn.execute([["PING"]])
        slow = asyncio.ensure_future(conn.execute([["BLPOP", "nothing", "0.3"], ["SET", "k", "first"]]))
        await asyncio.sleep(0.05)
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)
        replies = await conn.execute([["ECHO", "second"]])
        conn.close()
        return replies

    assert asyncio.run(scenario()) == [b"second"]
