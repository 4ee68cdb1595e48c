"""One admission for every entry point: the HTTP path, the WebSocket handshake and explain.

For a table of requests (trusted and untrusted proxies, encoded slashes, dot segments, rewrite,
strip-prefix, preserve-host, a key in the query, spoofed identity headers, refusals), the same
request goes through a real gateway as HTTP and as a WebSocket handshake to a recording
upstream: both must send the upstream the same path, query and forwarding/identity headers,
and both must reach the same decision that explain (the dry run) predicts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from aiohttp import web
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from proxy.explain import ExplainRequest, explain
from proxy.gateway import apikeys
from proxy.gateway.config import GatewayConfig
from proxy.gateway.snapshot import Snapshot
from tests.servers import free_port

pytestmark = pytest.mark.timeout(90)

PEPPER = b"pepper-of-the-parity-tests"
# What the gateway decides about a request's headers; client-library headers (User-Agent, ...)
# legitimately differ between an HTTP client and a WebSocket client and are left out.
COMPARED = (
    "host",
    "x-forwarded-for",
    "x-real-ip",
    "x-forwarded-proto",
    "x-forwarded-host",
    "via",
    "x-partner-id",
    "x-key-id",
    "x-plan",
    "x-api-key",
    "authorization",
    "x-custom",
)


class RecordingUpstream:
    """Records every request it gets (HTTP or WebSocket handshake): raw target and headers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    async def _any(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            {
                "websocket": request.headers.get("Upgrade", "").lower() == "websocket",
                "target": request.raw_path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
            }
        )
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.close()
            return ws
        return web.json_response({"ok": True})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> RecordingUpstream:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@dataclass
class Case:
    name: str
    path: str  # raw request target, query included
    headers: dict[str, str] = field(default_factory=dict)
    trusted: bool = False  # through the gateway that trusts 127.0.0.1 as a proxy
    # What the upstream must receive (None: the request must be refused with ``status``).
    target: str | None = None
    status: int = 200


def snapshot_data(upstream_url: str, key_spec: dict[str, Any]) -> dict[str, Any]:
    both = ["http", "websocket"]

    def route(name: str, path: str, **extra: Any) -> dict[str, Any]:
        extra.setdefault("auth", "public")
        extra.setdefault("path_type", "prefix")
        return {"name": name, "path": path, "upstream": "rec", "protocols": both, **extra}

    return {
        "upstreams": [{"name": "rec", "targets": [{"url": upstream_url, "weight": 1}]}],
        "routes": [
            route("plain", "/p", encoded_slashes="keep"),
            route("rewritten", r"^/r/(?P<id>[a-z0-9-]+)$", path_type="regex", rewrite="/items/{id}"),
            route("stripped", "/s", strip_prefix=True),
            route("host-kept", "/h", preserve_host=True),
            route("keyed", "/k", auth="key", product="appliances", allow_query_key=True),
        ],
        "plans": [{"slug": "gold", "scope": "key", "limits": {"minute": 100_000}, "quotas": {}}],
        "partners": [{"id": 1, "slug": "acme", "status": "active", "subscriptions": {"appliances": "gold"}}],
        "keys": [key_spec],
    }


@pytest.fixture(scope="module")
def key() -> tuple[str, dict[str, Any]]:
    secret, prefix = apikeys.generate()
    spec = {
        "id": 7,
        "prefix": prefix,
        "hash": apikeys.digest(PEPPER, secret),
        "partner": 1,
        "products": [],
        "expires": None,
    }
    return secret, spec


def cases(secret: str, prefix: str) -> list[Case]:
    return [
        Case("encoded slash kept", "/p/a%2Fb?x=1&y=%20", target="/p/a%2Fb?x=1&y=%20"),
        Case("dot segments resolved", "/p/x/../y", target="/p/y"),
        Case("rewrite", "/r/abc-1?q=2", target="/items/abc-1?q=2"),
        Case("strip prefix", "/s/x/y", target="/x/y"),
        Case("preserve host", "/h/z", headers={"Host": "api.example.com"}, target="/h/z"),
        Case(
            "untrusted forwarded-for",
            "/p/f",
            headers={"X-Forwarded-For": "203.0.113.5", "X-Custom": "kept"},
            target="/p/f",
        ),
        Case(
            "trusted forwarded-for",
            "/p/f",
            headers={"X-Forwarded-For": "203.0.113.5", "X-Real-IP": "6.6.6.6"},
            trusted=True,
            target="/p/f",
        ),
        Case(
            "query key consumed, identity set, spoofed identity dropped",
            f"/k/a?api_key={secret}&z=1",
            headers={"X-Partner-ID": "victim", "X-Key-ID": "nope"},
            target="/k/a?z=1",
        ),
        Case("header key consumed", "/k/b", headers={"X-API-Key": secret}, target="/k/b"),
        Case("no credentials", "/k/c", status=401),
        Case("wrong key", "/k/c", headers={"X-API-Key": f"gw_{prefix}_" + "A" * 40}, status=401),
        Case("no route", "/nowhere", status=404),
    ]


@pytest.fixture(scope="module")
def setup(key: tuple[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    from proxy.gateway.app import Gateway
    from tests.servers import ThreadServer

    secret, spec = key
    with RecordingUpstream() as upstream:
        data = snapshot_data(f"http://127.0.0.1:{upstream.port}", spec)
        servers = {}
        configs = {}
        for trusted in (False, True):
            config = GatewayConfig(
                redis_url=os.environ["REDIS_URL"],
                redis_prefix=os.environ["REDIS_PREFIX"] + f"parity{free_port()}:",
                api_key_pepper=PEPPER,
                trusted_proxies=("127.0.0.1/32",) if trusted else (),
            )
            configs[trusted] = config
            servers[trusted] = ThreadServer(Gateway(config, loader=lambda: data)).start()
        try:
            yield {"upstream": upstream, "servers": servers, "configs": configs, "data": data, "secret": secret}
        finally:
            for server in servers.values():
                server.stop()


def _compared(headers: dict[str, str]) -> dict[str, str | None]:
    return {name: headers.get(name) for name in COMPARED}


def _via_http(base: str, case: Case) -> int:
    response = httpx.get(base + case.path, headers=case.headers, timeout=10)
    return response.status_code


def _via_websocket(base: str, case: Case) -> int:
    """The same request as a WebSocket handshake. websockets takes Host from the URI, so the
    TCP connection to the gateway is opened here and the URI names the case's host."""
    port = int(base.rsplit(":", 1)[1])
    host = case.headers.get("Host", f"127.0.0.1:{port}")
    headers = {k: v for k, v in case.headers.items() if k.lower() != "host"}
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        with connect(f"ws://{host}{case.path}", sock=sock, additional_headers=headers, open_timeout=10):
            pass
        return 101
    except InvalidStatus as exc:
        return exc.response.status_code
    finally:
        sock.close()


def _explained(setup: dict[str, Any], case: Case, protocol: str) -> dict[str, Any]:
    config: GatewayConfig = setup["configs"][case.trusted]
    headers = [("Host", "127.0.0.1"), *case.headers.items()] if "Host" not in case.headers else case.headers.items()
    request = ExplainRequest(
        method="GET",
        url=f"{'ws' if protocol == 'websocket' else 'http'}://127.0.0.1{case.path}",
        headers=list(headers),
        protocol=protocol,
    )
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        return explain(request, Snapshot.compile(setup["data"], 1), client=client, config=config)
    finally:
        client.close()


@pytest.mark.parametrize("index", range(12))
def test_http_websocket_and_explain_agree(setup: dict[str, Any], key: tuple[str, dict[str, Any]], index: int) -> None:
    secret, spec = key
    case = cases(secret, spec["prefix"])[index]
    base = setup["servers"][case.trusted].url
    upstream: RecordingUpstream = setup["upstream"]

    upstream.seen.clear()
    http_status = _via_http(base, case)
    ws_status = _via_websocket(base, case)
    explained = {protocol: _explained(setup, case, protocol) for protocol in ("http", "websocket")}

    if case.target is None:
        assert (http_status, ws_status) == (case.status, case.status), case.name
        assert upstream.seen == [], f"{case.name}: a refused request reached the upstream"
        for protocol, answer in explained.items():
            assert answer["verdict"]["status"] == case.status, (case.name, protocol, answer["verdict"])
        return

    assert (http_status, ws_status) == (200, 101), case.name
    http_seen, ws_seen = upstream.seen
    assert (http_seen["websocket"], ws_seen["websocket"]) == (False, True)
    assert http_seen["target"] == ws_seen["target"] == case.target, case.name
    assert _compared(http_seen["headers"]) == _compared(ws_seen["headers"]), case.name
    for seen in (http_seen, ws_seen):
        assert seen["headers"]["x-request-id"] and seen["headers"]["traceparent"]
    for protocol, answer in explained.items():
        assert answer["verdict"]["would_forward"], (case.name, protocol, answer["verdict"])
        path, _, query = case.target.partition("?")
        assert answer["upstream"]["url"] == f"http://127.0.0.1:{upstream.port}{path}" + (f"?{query}" if query else "")


def test_the_forwarding_headers_tell_the_same_story(setup: dict[str, Any], key: tuple[str, dict[str, Any]]) -> None:
    """The values parity guards, spelled out once: behind a trusted proxy the chain gains the
    proxy's address and X-Real-IP names the client; otherwise the client's claim is only a
    claim, and identity headers come from the gateway alone."""
    secret, spec = key
    table = {c.name: c for c in cases(secret, spec["prefix"])}
    upstream: RecordingUpstream = setup["upstream"]
    seen = {}
    keyed_case = "query key consumed, identity set, spoofed identity dropped"
    for name in ("trusted forwarded-for", "untrusted forwarded-for", keyed_case, "preserve host"):
        upstream.seen.clear()
        case = table[name]
        _via_websocket(setup["servers"][case.trusted].url, case)
        seen[name] = upstream.seen[0]["headers"]
    trusted = seen["trusted forwarded-for"]
    assert (trusted["x-forwarded-for"], trusted["x-real-ip"]) == ("203.0.113.5, 127.0.0.1", "203.0.113.5")
    assert trusted["via"].startswith("1.1 ") and trusted["x-forwarded-proto"] == "http"
    untrusted = seen["untrusted forwarded-for"]
    assert (untrusted["x-forwarded-for"], untrusted["x-real-ip"]) == ("203.0.113.5, 127.0.0.1", "127.0.0.1")
    assert untrusted["x-custom"] == "kept"
    keyed = seen[keyed_case]
    assert (keyed["x-partner-id"], keyed["x-key-id"], keyed["x-plan"]) == ("acme", spec["prefix"], "gold")
    assert seen["preserve host"]["host"] == "api.example.com"
