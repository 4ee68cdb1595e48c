"""Behaviour of the demo appliance API, exercised over real HTTP on 127.0.0.1.

The async tests run through ``asyncio.run`` so they need no pytest plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from demo.__main__ import _parse_args
from demo.appliances import create_app

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0

AsyncTest = Callable[..., Coroutine[Any, Any, None]]


def async_test(fn: AsyncTest) -> Callable[..., None]:
    """Run an async test function on a fresh event loop, with a hard timeout."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), TIMEOUT))

    return wrapper


@contextlib.asynccontextmanager
async def serve(event_interval: float | None = None, seconds_per_tick: int = 60) -> AsyncIterator[TestClient[Any, Any]]:
    # No ticks by default, so tests see only the events they cause.
    app = create_app(event_interval=event_interval, seconds_per_tick=seconds_per_tick)
    async with TestClient(TestServer(app)) as client:
        yield client


async def read_sse_event(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """Read one SSE event (skipping keepalive comments) as {id, event, data}."""
    while True:
        block = await response.content.readuntil(b"\n\n")
        if not block:
            raise EOFError("event stream ended")
        fields: dict[str, Any] = {}
        for line in block.decode().splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        if fields:
            fields["data"] = json.loads(fields["data"])
            return fields


# --- appliances ---------------------------------------------------------------


@async_test
async def test_it_reports_health() -> None:
    async with serve() as client:
        response = await client.get("/healthz")
        assert response.status == 200
        assert await response.json() == {"status": "ok", "service": "apigw-demo"}


@async_test
async def test_it_lists_appliances() -> None:
    async with serve() as client:
        response = await client.get("/api/v1/appliances")
        assert response.status == 200
        assert response.content_type == "application/json"
        appliances = (await response.json())["appliances"]
        assert [a["id"] for a in appliances] == [
            "washer-1",
            "dryer-1",
            "oven-1",
            "fridge-1",
        ]
        washer = appliances[0]
        assert washer["type"] == "washer"
        assert washer["name"] == "Kitchen washer"
        assert washer["state"] == "idle"
        assert washer["program"] is None
        assert washer["door"] == "closed"
        assert washer["remaining_seconds"] == 0


@async_test
async def test_it_gets_one_appliance() -> None:
    async with serve() as client:
        response = await client.get("/api/v1/appliances/oven-1")
        assert response.status == 200
        body = await response.json()
        assert body["id"] == "oven-1"
        assert body["type"] == "oven"


@async_test
async def test_it_answers_unknown_appliance_with_json_404() -> None:
    async with serve() as client:
        response = await client.get("/api/v1/appliances/toaster-9")
        assert response.status == 404
        body = await response.json()
        assert body["error"]["code"] == "not_found"
        assert "toaster-9" in body["error"]["message"]


@async_test
async def test_it_starts_a_program() -> None:
    async with serve() as client:
        response = await client.put(
            "/api/v1/appliances/washer-1/program",
            json={"program": "eco", "temperature": 40},
        )
        assert response.status == 200
        body = await response.json()
        assert body["state"] == "running"
        assert body["program"] == "eco"
        assert body["temperature"] == 40
        assert body["remaining_seconds"] > 0
        # The change is visible to later reads, not just in the PUT answer.
        again = await (await client.get("/api/v1/appliances/washer-1")).json()
        assert again == body


@async_test
async def test_it_rejects_unknown_program() -> None:
    async with serve() as client:
        response = await client.put("/api/v1/appliances/oven-1/program", json={"program": "eco"})
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["code"] == "unknown_program"
        assert "bake" in error["message"]  # lists what is allowed


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b'["eco"]', "invalid_request"),
        (b"{}", "invalid_request"),
        (b'{"program": 3}', "invalid_request"),
        (b'{"program": "eco", "temperature": "hot"}', "invalid_temperature"),
        (b'{"program": "eco", "temperature": true}', "invalid_temperature"),
        (b'{"program": "eco", "temperature": 200}', "invalid_temperature"),
    ],
)
@async_test
async def test_it_rejects_malformed_program_requests(body: bytes, code: str) -> None:
    async with serve() as client:
        response = await client.put(
            "/api/v1/appliances/washer-1/program",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status == 400
        assert (await response.json())["error"]["code"] == code
        washer = await (await client.get("/api/v1/appliances/washer-1")).json()
        assert washer["state"] == "idle"


@async_test
async def test_it_refuses_to_start_a_running_appliance() -> None:
    async with serve() as client:
        url = "/api/v1/appliances/washer-1/program"
        assert (await client.put(url, json={"program": "quick"})).status == 200
        response = await client.put(url, json={"program": "eco"})
        assert response.status == 409
        assert (await response.json())["error"]["code"] == "already_running"
        washer = await (await client.get("/api/v1/appliances/washer-1")).json()
        assert washer["program"] == "quick"


@async_test
async def test_it_answers_program_for_unknown_appliance_with_404() -> None:
    async with serve() as client:
        put = await client.put("/api/v1/appliances/nope/program", json={"program": "eco"})
        assert put.status == 404
        delete = await client.delete("/api/v1/appliances/nope/program")
        assert delete.status == 404


@async_test
async def test_it_stops_a_program_and_stopping_again_is_harmless() -> None:
    async with serve() as client:
        url = "/api/v1/appliances/dryer-1/program"  # seeded as running
        response = await client.delete(url)
        assert response.status == 200
        body = await response.json()
        assert body["state"] == "idle"
        assert body["program"] is None
        assert body["remaining_seconds"] == 0
        again = await client.delete(url)
        assert again.status == 200
        assert await again.json() == body


@async_test
async def test_unknown_routes_and_methods_get_json_errors() -> None:
    async with serve() as client:
        missing = await client.get("/no/such/thing")
        assert missing.status == 404
        assert (await missing.json())["error"]["code"] == "not_found"
        wrong_method = await client.post("/api/v1/appliances")
        assert wrong_method.status == 405
        assert "GET" in wrong_method.headers["Allow"]
        error = (await wrong_method.json())["error"]
        assert error["code"] == "method_not_allowed"


# --- server-sent events -------------------------------------------------------


@async_test
async def test_sse_first_event_arrives_before_stream_ends() -> None:
    async with serve() as client:
        response = await client.get("/api/v1/events")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache"
        # No limit and no ticks: the stream stays open, yet hello is already here.
        event = await asyncio.wait_for(read_sse_event(response), 2)
        assert event["event"] == "hello"
        assert event["data"]["type"] == "hello"
        assert len(event["data"]["appliances"]) == 4
        assert not response.content.at_eof()
        response.close()


@async_test
async def test_sse_streams_state_changes_as_they_happen() -> None:
    async with serve() as client:
        stream = await client.get("/api/v1/events")
        hello = await read_sse_event(stream)

        await client.put("/api/v1/appliances/washer-1/program", json={"program": "eco"})
        started = await asyncio.wait_for(read_sse_event(stream), 2)
        assert started["event"] == "appliance"
        assert started["data"]["type"] == "started"
        assert started["data"]["appliance"]["id"] == "washer-1"
        assert started["data"]["appliance"]["state"] == "running"
        assert int(started["id"]) > int(hello["id"])

        await client.delete("/api/v1/appliances/washer-1/program")
        stopped = await asyncio.wait_for(read_sse_event(stream), 2)
        assert stopped["data"]["type"] == "stopped"
        assert int(stopped["id"]) == int(started["id"]) + 1
        stream.close()


@async_test
async def test_sse_limit_closes_stream_after_n_events() -> None:
    async with serve(event_interval=0.05) as client:
        response = await client.get("/api/v1/events", params={"limit": "3"})
        text = await response.text()  # returns only because the server ends it
        events = [block for block in text.split("\n\n") if block.strip()]
        assert len(events) == 3
        assert events[0].splitlines()[1] == "event: hello"
        assert all('"type":"tick"' in block for block in events[1:])


@async_test
async def test_ticks_count_programs_down_until_they_finish() -> None:
    async with serve(event_interval=0.05, seconds_per_tick=1000) as client:
        response = await client.get("/api/v1/events", params={"limit": "5"})
        events = [await read_sse_event(response) for _ in range(5)]
        dryer_remaining = [
            a["remaining_seconds"]
            for event in events
            if event["data"]["type"] == "tick"
            for a in event["data"]["appliances"]
            if a["id"] == "dryer-1"
        ]
        assert dryer_remaining == [1700, 700, 0]
        finished = events[-1]["data"]
        assert finished["type"] == "finished"
        assert finished["appliance"]["state"] == "finished"
        dryer = await (await client.get("/api/v1/appliances/dryer-1")).json()
        assert dryer["state"] == "finished"


@pytest.mark.parametrize("limit", ["0", "-1", "lots"])
@async_test
async def test_sse_rejects_bad_limit(limit: str) -> None:
    async with serve() as client:
        response = await client.get("/api/v1/events", params={"limit": limit})
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_limit"


@async_test
async def test_shutdown_ends_open_streams_promptly() -> None:
    server = TestServer(create_app(event_interval=None))
    client = TestClient(server)
    await client.start_server()
    try:
        stream = await client.get("/api/v1/events")
        await read_sse_event(stream)
        ws = await client.ws_connect("/api/v1/events/ws")
        await ws.receive_json(timeout=2)

        started = time.monotonic()
        await server.close()
        assert time.monotonic() - started < 2
        assert await stream.content.read() == b""
        closing = await ws.receive(timeout=2)
        assert closing.type is WSMsgType.CLOSE
        assert closing.data == aiohttp.WSCloseCode.GOING_AWAY
    finally:
        await client.close()


# --- websocket ----------------------------------------------------------------


@async_test
async def test_ws_sends_hello_then_state_changes() -> None:
    async with serve() as client:
        ws = await client.ws_connect("/api/v1/events/ws")
        hello = await ws.receive_json(timeout=2)
        assert hello["type"] == "hello"
        assert len(hello["appliances"]) == 4

        await client.put("/api/v1/appliances/oven-1/program", json={"program": "pizza"})
        started = await ws.receive_json(timeout=2)
        assert started["type"] == "started"
        assert started["appliance"]["id"] == "oven-1"
        assert started["id"] > hello["id"]
        await ws.close()


@async_test
async def test_ws_echoes_text_and_binary() -> None:
    async with serve() as client:
        ws = await client.ws_connect("/api/v1/events/ws")
        assert (await ws.receive_json(timeout=2))["type"] == "hello"

        await ws.send_str("ping from client")
        assert await ws.receive_json(timeout=2) == {
            "type": "echo",
            "data": "ping from client",
        }

        payload = bytes(range(256)) * 10
        await ws.send_bytes(payload)
        message = await ws.receive(timeout=2)
        assert message.type is WSMsgType.BINARY
        assert message.data == payload
        await ws.close()


@async_test
async def test_ws_limit_closes_socket_normally() -> None:
    async with serve() as client:
        ws = await client.ws_connect("/api/v1/events/ws", params={"limit": "1"})
        assert (await ws.receive_json(timeout=2))["type"] == "hello"
        closing = await ws.receive(timeout=2)
        assert closing.type is WSMsgType.CLOSE
        assert closing.data == aiohttp.WSCloseCode.OK


@async_test
async def test_ws_endpoint_rejects_plain_http() -> None:
    async with serve() as client:
        response = await client.get("/api/v1/events/ws")
        assert response.status == 400
        assert "error" in await response.json()


# --- debug endpoints ----------------------------------------------------------


@async_test
async def test_echo_reports_what_arrived() -> None:
    chunk = b"abc" * 100_000
    chunks = 20

    async def body() -> AsyncIterator[bytes]:
        for _ in range(chunks):
            yield chunk

    async with serve() as client:
        response = await client.post(
            "/echo/some%2Fpath/x?b=2&a=1&a=%20",
            data=body(),
            headers=[("X-Dup", "one"), ("X-Dup", "two"), ("X-Single", "v")],
        )
        assert response.status == 200
        echo = await response.json()
    assert echo["method"] == "POST"
    assert echo["path"] == "/echo/some%2Fpath/x"
    assert echo["query_string"] == "b=2&a=1&a=%20"
    assert echo["headers"]["x-dup"] == "one, two"
    assert echo["headers"]["x-single"] == "v"
    assert echo["headers"]["transfer-encoding"] == "chunked"
    assert echo["body_length"] == len(chunk) * chunks
    assert echo["body_sha256"] == hashlib.sha256(chunk * chunks).hexdigest()


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
@async_test
async def test_echo_accepts_any_method(method: str) -> None:
    async with serve() as client:
        response = await client.request(method, "/echo/")
        assert response.status == 200
        echo = await response.json()
        assert echo["method"] == method
        assert echo["body_length"] == 0
        assert echo["body_sha256"] == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("size", [0, 1, 65536, 200_000])
@async_test
async def test_bytes_streams_exactly_n_bytes_chunked(size: int) -> None:
    async with serve() as client:
        response = await client.get(f"/bytes/{size}")
        assert response.status == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in response.headers
        assert await response.read() == b"x" * size


@pytest.mark.parametrize("code", [200, 201, 302, 418, 503])
@async_test
async def test_status_answers_with_requested_code(code: int) -> None:
    async with serve() as client:
        response = await client.get(f"/status/{code}", allow_redirects=False)
        assert response.status == code
        assert await response.read()


@pytest.mark.parametrize("code", [204, 304])
@async_test
async def test_status_sends_no_body_for_204_and_304(code: int) -> None:
    async with serve() as client:
        response = await client.get(f"/status/{code}")
        assert response.status == code
        assert await response.read() == b""


@async_test
async def test_status_rejects_codes_outside_200_to_599() -> None:
    async with serve() as client:
        response = await client.get("/status/101")
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_status"


@async_test
async def test_slow_waits_before_answering() -> None:
    async with serve() as client:
        started = time.monotonic()
        response = await client.get("/slow/0.3")
        assert response.status == 200
        assert await response.json() == {"slept": 0.3}
        assert time.monotonic() - started >= 0.3


@async_test
async def test_redirect_points_at_appliance_list() -> None:
    async with serve() as client:
        response = await client.get("/redirect", allow_redirects=False)
        assert response.status == 302
        assert response.headers["Location"] == "/api/v1/appliances"
        followed = await client.get("/redirect")
        assert "appliances" in await followed.json()


# --- command line -------------------------------------------------------------


def test_demo_port_env_overrides_default_port(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _parse_args([]).port == 8001
    monkeypatch.setenv("DEMO_PORT", "9123")
    args = _parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 9123)
    assert _parse_args(["--port", "9"]).port == 9


def test_main_prints_address_and_exits_cleanly_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("demo appliance API on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
