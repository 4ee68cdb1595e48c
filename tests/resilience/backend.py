"""A test upstream that says who it is and does what the test asks of it.

As its own process (``python -m tests.resilience.backend --port P --name N``) a test can kill it;
in a thread of the test (``Backend``) the test can read its counters. Every request answers JSON
``{"name", "path", "method", "count", "headers", "body_length"}``, where ``count`` is the number
of requests this backend served so far (a cached answer repeats an old count), with the
backend's ``status`` (200 unless started otherwise). Query parameters shape the answer:
``status=503``, ``h=Name:value`` (repeatable response header), ``size=N``
(pads the body). ``/slow/<seconds>`` waits first, ``GET /_hits`` counts without being counted,
``POST /_health?status=503`` changes what ``/healthz`` answers.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from typing import Any

from aiohttp import web

from tests.servers import Process, free_port


def create_app(name: str, delay: float = 0.0, status: int = 200) -> web.Application:
    state: dict[str, Any] = {"hits": 0, "health": 200}

    async def anything(request: web.Request) -> web.Response:
        state["hits"] += 1
        count = state["hits"]
        body = await request.read()
        if request.path.startswith("/slow/"):
            await asyncio.sleep(float(request.path.split("/")[2]))
        elif delay:
            await asyncio.sleep(delay)
        headers: list[tuple[str, str]] = []
        for pair in request.query.getall("h", []):
            header, _, value = pair.partition(":")
            headers.append((header, value))
        payload = {
            "name": name,
            "path": request.path,
            "method": request.method,
            "count": count,
            "headers": {k.lower(): ", ".join(request.headers.getall(k)) for k in request.headers},
            "body_length": len(body),
            "pad": "x" * int(request.query.get("size", "0")),
        }
        response = web.json_response(payload, status=int(request.query.get("status", status)))
        for header, value in headers:
            response.headers.add(header, value)
        return response

    async def hits(request: web.Request) -> web.Response:
        return web.json_response({"hits": state["hits"]})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"name": name}, status=state["health"])

    async def set_health(request: web.Request) -> web.Response:
        state["health"] = int(request.query["status"])
        return web.json_response({"health": state["health"]})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/_hits", hits)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/_health", set_health)
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


class Backend:
    """The backend in a thread of the test process, on its own event loop."""

    def __init__(self, name: str, *, delay: float = 0.0, status: int = 200, port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.app = create_app(name, delay, status)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        self.runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=0.2)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def start(self) -> Backend:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:  # handlers still sleeping in /slow/…
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def backend_process(port: int, name: str) -> Process:
    return Process(
        [sys.executable, "-m", "tests.resilience.backend", "--port", str(port), "--name", name],
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_name=f"backend-{name}",
    )


async def _serve(port: int, name: str) -> None:
    runner = web.AppRunner(create_app(name), handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.name))
