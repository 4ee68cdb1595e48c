"""WebSocket passthrough through two real gateway processes to a real upstream.

ivy's key may hold at most two sockets at once, on any instance.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from proxy import services
from tests import factories
from tests.conftest import redis_backend_for, subprocess_database_url
from tests.servers import Process, RedisBackend, free_port, gateway_process
from tests.upstreams import SilentServer, WebSocketUpstream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def setup(ws_upstream: WebSocketUpstream) -> dict[str, Any]:
    upstream = factories.upstream(name="ws", targets=[ws_upstream.url])
    down = factories.upstream(name="down", targets=[f"http://127.0.0.1:{free_port()}"])
    product = factories.product(slug="events")
    ws = ["websocket"]
    common = {"upstream": upstream, "protocols": ws, "product": product}
    factories.route(name="ws", path="/ws", auth="key", allow_query_key=True, **common)
    factories.route(
        name="small",
        path="/small",
        auth="key",
        rewrite="/ws",
        ws_max_message_bytes=1000,
        ws_messages_per_second=5,
        **common,
    )
    factories.route(name="capped", path="/capped", auth="key", rewrite="/ws", ws_max_connections_per_key=2, **common)
    factories.route(name="public", path="/public", auth="public", rewrite="/ws", upstream=upstream, protocols=ws)
    factories.route(name="refused", path="/refused", auth="public", rewrite="/refuse", upstream=upstream, protocols=ws)
    factories.route(name="down", path="/down", auth="public", upstream=down, protocols=ws)
    plan = factories.plan(slug="open")
    return {"key": factories.subscribed_key(product=product, plan=plan, partner="ivy", name="ivy")}


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> RedisBackend:
    """The single Redis, or the cluster for the tests parametrised with ``BOTH_BACKENDS``."""
    return redis_backend_for(request, getattr(request, "param", "single"))


# The cross-instance tests (leases and revocation) run on a single Redis and on a Redis Cluster.
BOTH_BACKENDS = pytest.mark.parametrize("backend", ["single", "cluster"], indirect=True)


@pytest.fixture
def processes(setup: dict[str, Any], backend: RedisBackend) -> Iterator[list[Process]]:
    procs: list[Process] = []
    env = {"DATABASE_URL": subprocess_database_url(), **backend.env}
    for _ in range(2):
        procs.append(gateway_process(free_port(), env=env).start())
    yield procs
    for proc in procs:
        proc.stop()


@pytest.fixture
def gateways(processes: list[Process]) -> list[str]:
    return [f"ws://127.0.0.1:{proc.port}" for proc in processes]


def open_ws(url: str, key: str | None = None, **kwargs: Any) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return connect(url, additional_headers=headers, open_timeout=10, max_size=8 * 1024 * 1024, **kwargs)


def closed_with(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as caught:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ws.recv(timeout=timeout)
    assert caught.value.rcvd is not None
    return caught.value.rcvd.code, caught.value.rcvd.reason


def test_text_binary_and_large_messages_pass_both_ways(gateways: list[str], setup: dict[str, Any]) -> None:
    with open_ws(gateways[0] + "/ws", setup["key"]) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=5) == b"\x00\x01\xff"
        big = bytes(range(256)) * 4000  # 1,024,000 bytes
        ws.send(big)
        assert ws.recv(timeout=10) == big
        ws.send("flood:200")
        assert [ws.recv(timeout=5) for _ in range(200)] == [f"m{i}" for i in range(200)]


def test_the_subprotocol_and_identity_reach_the_upstream(gateways: list[str], setup: dict[str, Any]) -> None:
    with open_ws(gateways[0] + "/ws?x=1", setup["key"], subprotocols=["v2"]) as ws:
        assert ws.subprotocol == "v2"
        ws.send("whoami")
        seen = json.loads(ws.recv(timeout=5))
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["x-partner-id"] == "ivy"
    assert "authorization" not in headers
    assert seen["query"] == "x=1"


def test_a_key_can_come_as_a_subprotocol_or_query_parameter(gateways: list[str], setup: dict[str, Any]) -> None:
    with connect(gateways[1] + "/ws", subprotocols=["v1", f"apikey.{setup['key']}"], open_timeout=10) as ws:
        assert ws.subprotocol == "v1"
        ws.send("whoami")
        assert "apikey" not in ws.recv(timeout=5)
    with connect(gateways[1] + f"/ws?api_key={setup['key']}&y=2", open_timeout=10) as ws:
        ws.send("whoami")
        reply = ws.recv(timeout=5)
        assert '"query": "y=2"' in str(reply)
    with pytest.raises(InvalidStatus) as refused:
        connect(gateways[1] + "/ws", open_timeout=10)
    assert refused.value.response.status_code == 401


def test_close_codes_travel_both_ways(
    gateways: list[str], setup: dict[str, Any], ws_upstream: WebSocketUpstream
) -> None:
    with open_ws(gateways[0] + "/ws", setup["key"]) as ws:
        ws.send("close:4002:done")
        assert closed_with(ws) == (4002, "done")
    with open_ws(gateways[0] + "/ws", setup["key"]) as ws:
        ws.send("ping")
        ws.recv(timeout=5)
        ws.close(code=4001, reason="bye")
    deadline = time.monotonic() + 5
    while (4001, "") not in ws_upstream.closes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (4001, "") in ws_upstream.closes


def test_an_oversize_message_closes_with_1009(gateways: list[str], setup: dict[str, Any]) -> None:
    with open_ws(gateways[0] + "/small", setup["key"]) as ws:
        ws.send("x" * 1000)
        assert ws.recv(timeout=5) == "x" * 1000
        ws.send("x" * 1001)
        assert closed_with(ws)[0] == 1009


def test_a_message_flood_closes_with_1008(gateways: list[str], setup: dict[str, Any]) -> None:
    with open_ws(gateways[0] + "/small", setup["key"]) as ws:
        for i in range(20):
            try:
                ws.send(f"n{i}")
            except ConnectionClosed:
                break
        code, reason = closed_with(ws)
    assert code == 1008
    assert "rate" in reason


@BOTH_BACKENDS
def test_concurrent_sockets_are_capped_across_instances(gateways: list[str], setup: dict[str, Any]) -> None:
    a, b = gateways
    with open_ws(b + "/capped", setup["key"]) as second:
        with open_ws(a + "/capped", setup["key"]):
            with pytest.raises(InvalidStatus) as refused:
                open_ws(a + "/capped", setup["key"])
            assert refused.value.response.status_code == 429
            assert b"too_many_sockets" in refused.value.response.body
        time.sleep(0.2)  # the first one closed: its lease is released
        with open_ws(b + "/capped", setup["key"]) as third:
            third.send("ok")
            assert third.recv(timeout=5) == "ok"
        second.send("still")
        assert second.recv(timeout=5) == "still"


def test_an_unavailable_upstream_refuses_the_handshake(gateways: list[str]) -> None:
    for path, status in (("/down", 502), ("/refused", 502), ("/nowhere", 404)):
        started = time.monotonic()
        with pytest.raises(InvalidStatus) as refused:
            connect(gateways[0] + path, open_timeout=10)
        assert refused.value.response.status_code == status
        assert time.monotonic() - started < 5


def test_a_silent_upstream_times_out_the_handshake(gateways: list[str]) -> None:
    silent = SilentServer().start()
    try:
        hung = factories.upstream(name="hung", connect_timeout=0.5, targets=[f"http://127.0.0.1:{silent.port}"])
        factories.route(upstream=hung, name="hung", path="/hung", auth="public", protocols=["websocket"])
        time.sleep(1.0)  # the new route reaches the gateway
        started = time.monotonic()
        with pytest.raises(InvalidStatus) as refused:
            connect(gateways[0] + "/hung", open_timeout=10)
        assert refused.value.response.status_code == 504
        assert time.monotonic() - started < 3
    finally:
        silent.stop()


@BOTH_BACKENDS
def test_revoking_a_key_closes_its_socket_on_the_other_instance_within_a_second(
    gateways: list[str], setup: dict[str, Any]
) -> None:
    with open_ws(gateways[1] + "/ws", setup["key"]) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
        key = services.api_key_find(setup["key"])
        assert key is not None
        revoked_at = time.monotonic()
        services.api_key_revoke(key=key)
        code, reason = closed_with(ws, timeout=3)
        took = time.monotonic() - revoked_at
    assert code == 4401
    assert "revoked" in reason
    assert took < 1.0


def test_a_thousand_concurrent_sockets(gateways: list[str], setup: dict[str, Any], processes: list[Process]) -> None:
    url = gateways[0] + "/public"
    echoed = 0

    async def one(i: int, release: asyncio.Event) -> str:
        nonlocal echoed
        async with aconnect(url, open_timeout=60) as ws:
            await ws.send(f"s{i}")
            reply = await asyncio.wait_for(ws.recv(), 60)
            echoed += 1
            await release.wait()  # hold every socket open until memory has been read
            return str(reply)

    async def scenario() -> tuple[list[str], int]:
        release = asyncio.Event()
        tasks = [asyncio.create_task(one(i, release)) for i in range(1000)]
        deadline = time.monotonic() + 90
        while echoed < 1000 and time.monotonic() < deadline and not any(t.done() for t in tasks):
            await asyncio.sleep(0.05)
        rss = rss_kib(processes[0])
        release.set()
        return await asyncio.gather(*tasks), rss

    replies, rss = asyncio.run(scenario())
    assert replies == [f"s{i}" for i in range(1000)]
    print(f"\ngateway RSS with 1,000 open sockets: {rss / 1024:.1f} MiB")


def rss_kib(proc: Process) -> int:
    assert proc.proc is not None
    with open(f"/proc/{proc.proc.pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
