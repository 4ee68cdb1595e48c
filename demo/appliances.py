"""A small smart-home appliance API that the gateway forwards to.

Everything lives in memory, so each ``create_app()`` call gets its own,
freshly seeded store. Besides the appliance endpoints the app exposes a few
echo/debug endpoints that the gateway's tests use to check what really arrived
upstream (headers, bodies, streaming, slow and odd responses).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

logger = logging.getLogger(__name__)

EVENT_INTERVAL = 1.0
# The simulation runs faster than wall-clock time so a demo shows progress.
SECONDS_PER_TICK = 60
# Idle SSE streams get a comment this often so proxies do not time them out
# and so a vanished client is noticed even when nothing else happens.
KEEPALIVE_SECONDS = 15.0
CHUNK_SIZE = 64 * 1024
MAX_SLOW_SECONDS = 300.0
# A subscriber that falls this far behind is dropped instead of buffering
# without bound.
SUBSCRIBER_QUEUE_SIZE = 256

State = Literal["idle", "running", "finished"]
Door = Literal["open", "closed"]

# Program name -> duration in (simulated) seconds, per appliance type.
PROGRAMS: dict[str, dict[str, int]] = {
    "washer": {
        "eco": 3 * 3600,
        "cotton": 2 * 3600,
        "quick": 30 * 60,
        "delicates": 50 * 60,
    },
    "dryer": {"cotton": 90 * 60, "synthetics": 60 * 60, "quick": 40 * 60},
    "oven": {"bake": 45 * 60, "grill": 20 * 60, "pizza": 15 * 60, "defrost": 30 * 60},
    "fridge": {"super-cool": 6 * 3600, "vacation": 7 * 24 * 3600},
}
TEMPERATURES: dict[str, tuple[int, int]] = {
    "washer": (20, 95),
    "dryer": (40, 80),
    "oven": (30, 300),
    "fridge": (-24, 8),
}

_FILL_CHUNK = memoryview(b"x" * CHUNK_SIZE)


class ApiError(Exception):
    """An error that is answered as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error_response(status: int, code: str, message: str, headers: CIMultiDict[str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


@dataclass
class Appliance:
    id: str
    type: str
    name: str
    state: State = "idle"
    program: str | None = None
    temperature: int | None = None
    door: Door = "closed"
    remaining_seconds: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _seed() -> list[Appliance]:
    return [
        Appliance("washer-1", "washer", "Kitchen washer"),
        # One appliance starts mid-program so the event stream has something
        # to show straight away.
        Appliance(
            "dryer-1",
            "dryer",
            "Kitchen dryer",
            state="running",
            program="cotton",
            temperature=60,
            remaining_seconds=45 * 60,
        ),
        Appliance("oven-1", "oven", "Oven"),
        Appliance("fridge-1", "fridge", "Fridge"),
    ]


@dataclass(frozen=True)
class Event:
    id: int
    name: str
    data: dict[str, Any]

    def to_sse(self) -> bytes:
        payload = json.dumps(self.data, separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.name}\ndata: {payload}\n\n".encode()

    def to_ws(self) -> dict[str, Any]:
        return {"id": self.id, **self.data}


class Subscription:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(SUBSCRIBER_QUEUE_SIZE)
        self.closed = False

    def push(self, event: Event) -> bool:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.closed = True
            return False
        return True

    def close(self) -> None:
        self.closed = True
        # A full queue already ends the reader once it is drained.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def get(self) -> Event | None:
        """Next event, or None once the subscription is closed and drained."""
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()


class EventHub:
    """Fans appliance events out to every connected SSE/WebSocket client."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._subscribers: set[Subscription] = set()
        self._closed = False
        self.last_id = 0

    def publish(self, name: str, data: dict[str, Any]) -> Event:
        self.last_id = next(self._ids)
        event = Event(self.last_id, name, data)
        for sub in list(self._subscribers):
            if not sub.push(event):
                logger.warning("dropping event subscriber that fell behind")
                self._subscribers.discard(sub)
        return event

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        sub = Subscription()
        if self._closed:
            sub.close()
        else:
            self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def close(self) -> None:
        self._closed = True
        for sub in self._subscribers:
            sub.close()
        self._subscribers.clear()


class ApplianceStore:
    """The appliances plus the rules for changing them; every change is published."""

    def __init__(self, hub: EventHub, appliances: list[Appliance]) -> None:
        self._hub = hub
        self._appliances = {a.id: a for a in appliances}

    def snapshot(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self._appliances.values()]

    def get(self, appliance_id: str) -> Appliance:
        try:
            return self._appliances[appliance_id]
        except KeyError:
            raise ApiError(404, "not_found", f"no appliance {appliance_id!r}") from None

    def start(self, appliance_id: str, program: str, temperature: int | None) -> Appliance:
        appliance = self.get(appliance_id)
        programs = PROGRAMS[appliance.type]
        if program not in programs:
            allowed = ", ".join(sorted(programs))
            raise ApiError(
                400,
                "unknown_program",
                f"{appliance.type} has no program {program!r} (allowed: {allowed})",
            )
        if temperature is not None:
            low, high = TEMPERATURES[appliance.type]
            if not low <= temperature <= high:
                raise ApiError(
                    400,
                    "invalid_temperature",
                    f"temperature for a {appliance.type} must be {low}..{high}",
                )
        if appliance.state == "running":
            raise ApiError(
                409,
                "already_running",
                f"{appliance_id} is already running {appliance.program}",
            )
        appliance.state = "running"
        appliance.program = program
        appliance.temperature = temperature
        appliance.remaining_seconds = programs[program]
        self._publish("started", appliance)
        return appliance

    def stop(self, appliance_id: str) -> Appliance:
        appliance = self.get(appliance_id)
        # Stopping an idle appliance is a no-op so retried DELETEs are harmless.
        if appliance.state != "idle":
            appliance.state = "idle"
            appliance.program = None
            appliance.temperature = None
            appliance.remaining_seconds = 0
            self._publish("stopped", appliance)
        return appliance

    def tick(self, seconds: int) -> None:
        running = [a for a in self._appliances.values() if a.state == "running"]
        finished = []
        for appliance in running:
            appliance.remaining_seconds = max(0, appliance.remaining_seconds - seconds)
            if appliance.remaining_seconds == 0:
                appliance.state = "finished"
                finished.append(appliance)
        self._hub.publish("appliance", {"type": "tick", "appliances": [a.to_json() for a in running]})
        for appliance in finished:
            self._publish("finished", appliance)

    def _publish(self, kind: str, appliance: Appliance) -> None:
        self._hub.publish("appliance", {"type": kind, "appliance": appliance.to_json()})


HUB = web.AppKey("hub", EventHub)
STORE = web.AppKey("store", ApplianceStore)


# --- middleware ---------------------------------------------------------------


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # Keep headers such as Allow on 405, but the body is ours now.
        headers = CIMultiDict(exc.headers)
        headers.popall(hdrs.CONTENT_TYPE, None)
        headers.popall(hdrs.CONTENT_LENGTH, None)
        code = exc.reason.lower().replace(" ", "_").replace("-", "_")
        return _error_response(exc.status, code, exc.text or exc.reason, headers)
    except ConnectionError:
        raise  # the client is gone; there is nobody to answer
    except Exception:
        logger.exception("unhandled error for %s %s", request.method, request.path)
        return _error_response(500, "internal_error", "internal server error")


# --- appliance endpoints ------------------------------------------------------


async def list_appliances(request: web.Request) -> web.Response:
    return web.json_response({"appliances": request.app[STORE].snapshot()})


async def get_appliance(request: web.Request) -> web.Response:
    appliance = request.app[STORE].get(request.match_info["id"])
    return web.json_response(appliance.to_json())


async def _read_program_request(request: web.Request) -> tuple[str, int | None]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "request body must be a JSON object")
    program = body.get("program")
    if not isinstance(program, str) or not program:
        raise ApiError(400, "invalid_request", '"program" is required and must be a string')
    temperature = body.get("temperature")
    # bool is an int subclass, but true/false is not a temperature.
    if temperature is not None and (not isinstance(temperature, int) or isinstance(temperature, bool)):
        raise ApiError(400, "invalid_temperature", '"temperature" must be an integer')
    return program, temperature


async def start_program(request: web.Request) -> web.Response:
    store = request.app[STORE]
    appliance_id = request.match_info["id"]
    store.get(appliance_id)  # an unknown appliance is a 404 even with a bad body
    program, temperature = await _read_program_request(request)
    appliance = store.start(appliance_id, program, temperature)
    return web.json_response(appliance.to_json())


async def stop_program(request: web.Request) -> web.Response:
    appliance = request.app[STORE].stop(request.match_info["id"])
    return web.json_response(appliance.to_json())


# --- event streams ------------------------------------------------------------


def _parse_limit(request: web.Request) -> int | None:
    raw = request.query.get("limit")
    if raw is None:
        return None
    if not raw.isdecimal() or int(raw) < 1:
        raise ApiError(400, "invalid_limit", '"limit" must be a positive integer')
    return int(raw)


async def _event_feed(app: web.Application, limit: int | None) -> AsyncGenerator[Event | None, None]:
    """Yield the hello event, then live events until ``limit`` or shutdown.

    ``None`` is yielded after KEEPALIVE_SECONDS without an event.
    """
    hub, store = app[HUB], app[STORE]
    # Subscribe before taking the snapshot so no change can fall between them.
    with hub.subscribe() as sub:
        # hello reuses the id of the last event already reflected in the snapshot.
        hello = Event(hub.last_id, "hello", {"type": "hello", "appliances": store.snapshot()})
        yield hello
        sent = 1
        while limit is None or sent < limit:
            try:
                event = await asyncio.wait_for(sub.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield None
                continue
            if event is None:
                return
            yield event
            sent += 1


async def events_sse(request: web.Request) -> web.StreamResponse:
    limit = _parse_limit(request)
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: "text/event-stream",
            hdrs.CACHE_CONTROL: "no-cache",
            # Tells nginx-style proxies not to buffer the stream.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        async with contextlib.aclosing(_event_feed(request.app, limit)) as feed:
            async for event in feed:
                await response.write(event.to_sse() if event else b": keepalive\n\n")
        await response.write_eof()
    except ConnectionResetError:
        pass  # client went away; nothing left to tell it
    return response


async def _forward_events(
    app: web.Application,
    ws: web.WebSocketResponse,
    limit: int | None,
    closing: asyncio.Event,
) -> None:
    sent = 0
    try:
        async with contextlib.aclosing(_event_feed(app, limit)) as feed:
            async for event in feed:
                if event is not None:
                    await ws.send_json(event.to_ws())
                    sent += 1
    except ConnectionResetError:
        return
    closing.set()
    await ws.close(code=WSCloseCode.OK if sent == limit else WSCloseCode.GOING_AWAY)


async def events_ws(request: web.Request) -> web.WebSocketResponse:
    limit = _parse_limit(request)
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    closing = asyncio.Event()
    sender = asyncio.create_task(_forward_events(request.app, ws, limit, closing))
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_json({"type": "echo", "data": msg.data})
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
    finally:
        # Cancelling a sender that is already closing the socket would cut
        # the close handshake short.
        if not closing.is_set():
            sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    return ws


# --- health and debug endpoints -----------------------------------------------


# "service" lets `make run` tell the demo from whatever else might answer on its port.
LIVE = {"status": "ok", "service": "apigw-demo"}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(LIVE)


async def echo(request: web.Request) -> web.Response:
    # Hash while reading so arbitrarily large uploads never sit in memory.
    digest = hashlib.sha256()
    length = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        length += len(chunk)
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    # raw_path is the request target exactly as sent, before any decoding.
    path, _, query = request.raw_path.partition("?")
    return web.json_response(
        {
            "method": request.method,
            "path": path,
            "query_string": query,
            "http_version": f"{request.version.major}.{request.version.minor}",
            "headers": headers,
            "body_length": length,
            "body_sha256": digest.hexdigest(),
        }
    )


async def stream_bytes(request: web.Request) -> web.StreamResponse:
    remaining = int(request.match_info["n"])
    response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: "application/octet-stream"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        while remaining > 0:
            size = min(remaining, CHUNK_SIZE)
            await response.write(_FILL_CHUNK[:size])
            remaining -= size
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response


async def status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    if not 200 <= code <= 599:
        raise ApiError(400, "invalid_status", "status must be between 200 and 599")
    if code in (204, 304):
        return web.Response(status=code)
    if code >= 400:
        return _error_response(code, "requested_status", f"status {code} as requested")
    return web.json_response({"status": code}, status=code)


async def slow(request: web.Request) -> web.Response:
    seconds = float(request.match_info["seconds"])
    if seconds > MAX_SLOW_SECONDS:
        raise ApiError(400, "invalid_delay", f"at most {MAX_SLOW_SECONDS:g} seconds")
    await asyncio.sleep(seconds)
    return web.json_response({"slept": seconds})


async def redirect(request: web.Request) -> web.Response:
    return web.json_response(
        {"location": "/api/v1/appliances"},
        status=302,
        headers={hdrs.LOCATION: "/api/v1/appliances"},
    )


# --- application --------------------------------------------------------------


async def _run_ticker(store: ApplianceStore, interval: float, seconds_per_tick: int) -> None:
    while True:
        await asyncio.sleep(interval)
        store.tick(seconds_per_tick)


def create_app(
    event_interval: float | None = EVENT_INTERVAL,
    seconds_per_tick: int = SECONDS_PER_TICK,
) -> web.Application:
    """Build the demo app.

    ``event_interval`` is the time between simulated tick events, or None for
    no ticks (tests that want only the events they cause). Each tick advances
    running programs by ``seconds_per_tick`` simulated seconds.
    """
    if event_interval is not None and event_interval <= 0:
        raise ValueError("event_interval must be positive or None")

    hub = EventHub()
    store = ApplianceStore(hub, _seed())
    app = web.Application(middlewares=[_json_errors])
    app[HUB] = hub
    app[STORE] = store

    async def ticker(app: web.Application) -> AsyncIterator[None]:
        task = None
        if event_interval is not None:
            task = asyncio.create_task(_run_ticker(store, event_interval, seconds_per_tick))
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def end_streams(app: web.Application) -> None:
        # Long-lived SSE/WebSocket handlers would otherwise hold up shutdown.
        hub.close()

    app.cleanup_ctx.append(ticker)
    app.on_shutdown.append(end_streams)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/appliances", list_appliances)
    app.router.add_get("/api/v1/appliances/{id}", get_appliance)
    app.router.add_put("/api/v1/appliances/{id}/program", start_program)
    app.router.add_delete("/api/v1/appliances/{id}/program", stop_program)
    app.router.add_get("/api/v1/events", events_sse)
    app.router.add_get("/api/v1/events/ws", events_ws)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get(r"/bytes/{n:\d+}", stream_bytes)
    app.router.add_get(r"/status/{code:\d{3}}", status)
    app.router.add_get(r"/slow/{seconds:\d+(?:\.\d+)?}", slow)
    app.router.add_get("/redirect", redirect)
    return app
