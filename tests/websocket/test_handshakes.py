"""WebSocket handshakes as real clients make them: the key as a subprotocol (what browsers must
do) and an upstream with a dead target.

The gateway runs in a thread on a fixed snapshot (no database) in front of real aiohttp
WebSocket upstreams; the clients are the ``websockets`` library's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from proxy.gateway import apikeys
from proxy.gateway.breaker import OPEN
from proxy.gateway.subprotocols import MARKER, Offer
from tests.servers import free_port
from tests.upstreams import WebSocketUpstream

pytestmark = pytest.mark.timeout(120)

PEPPER = b"pepper-of-the-handshake-tests"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[list[WebSocketUpstream]]:
    servers = [WebSocketUpstream().start()]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def key() -> tuple[str, dict[str, Any]]:
    secret, prefix = apikeys.generate()
    spec = {"id": 1, "prefix": prefix, "hash": apikeys.digest(PEPPER, secret), "partner": 1, "products": []}
    return secret, spec


def snapshot(targets: list[str], key_spec: dict[str, Any]) -> dict[str, Any]:
    ws = ["websocket"]
    return {
        "upstreams": [{"name": "ws", "targets": [{"url": url, "weight": 1} for url in targets]}],
        "routes": [
            {"name": "keyed", "path": "/ws", "upstream": "ws", "protocols": ws, "auth": "key", "allow_query_key": True},
            {"name": "open", "path": "/open", "rewrite": "/ws", "upstream": "ws", "protocols": ws, "auth": "public"},
        ],
        "plans": [],
        "partners": [{"id": 1, "slug": "pia", "status": "active", "subscriptions": {}}],
        "keys": [key_spec],
    }


def ws_url(server: Any, path: str) -> str:
    return "ws" + server.url.removeprefix("http") + path


@pytest.mark.parametrize(
    ("offered", "upstream_chose", "answer"),
    [
        (Offer(["v1"], "k", "apikey.k", marker=True), "v1", "v1"),
        (Offer([], "k", "apikey.k", marker=True), None, MARKER),
        (Offer([], "k", "apikey.k", marker=False), None, "apikey.k"),
        (Offer(["v9"], "k", "apikey.k", marker=False), None, None),
        (Offer([], None, None, marker=False), None, None),
    ],
)
def test_the_answer_is_always_a_protocol_the_client_offered(
    offered: Offer, upstream_chose: str | None, answer: str | None
) -> None:
    assert offered.answer(upstream_chose) == answer


def test_a_key_offered_as_a_subprotocol_opens_the_socket_as_browsers_require(
    static_gateway: Any, upstreams: list[WebSocketUpstream], key: tuple[str, dict[str, Any]]
) -> None:
    secret, spec = key
    server = static_gateway(snapshot([upstreams[0].url], spec), api_key_pepper=PEPPER)
    url = ws_url(server, "/ws")
    # The marker and a real protocol the upstream speaks: the upstream's choice comes back.
    with connect(url, subprotocols=["v1", MARKER, f"apikey.{secret}"], open_timeout=10) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "v1"
        ws.send("whoami")
        seen = ws.recv(timeout=5)
        assert secret not in seen and "apikey" not in seen  # nothing of the key went upstream
    # The marker alone: the upstream chose nothing, the client still gets a protocol it offered.
    with connect(url, subprotocols=[MARKER, f"apikey.{secret}"], open_timeout=10) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == MARKER
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"
    # The key protocol alone (older snippets): echoed to the client that sent it, nowhere else.
    with connect(url, subprotocols=[f"apikey.{secret}"], open_timeout=10) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == f"apikey.{secret}"
    # A wrong key in the protocol is refused like a wrong header.
    with pytest.raises(InvalidStatus) as refused:
        connect(url, subprotocols=[MARKER, "apikey.gw_aaaaaaaa_" + "B" * 40], open_timeout=10)  # type: ignore[list-item]
    assert refused.value.response.status_code == 401


def test_handshakes_learn_from_a_dead_target(
    static_gateway: Any, upstreams: list[WebSocketUpstream], key: tuple[str, dict[str, Any]]
) -> None:
    """One of two targets is down and only WebSockets arrive: the refused handshakes are retried
    on the live target and the dead one is ejected, as for HTTP."""
    dead = f"http://127.0.0.1:{free_port()}"
    server = static_gateway(snapshot([dead, upstreams[0].url], key[1]))
    opened = 0
    for _ in range(100):
        try:
            with connect(ws_url(server, "/open"), open_timeout=10) as ws:
                ws.send("hi")
                assert ws.recv(timeout=5) == "hi"
                opened += 1
        except InvalidStatus:
            pass
    assert opened >= 99
    assert server.gateway.health.circuits[f"ws|{dead}"].state == OPEN
