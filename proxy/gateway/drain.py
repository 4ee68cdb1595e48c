"""Graceful shutdown: what SIGTERM starts in this process before the server stops.

Orchestrators send SIGTERM and kill the process after a grace period (Kubernetes: 30 s). The
server (uvicorn) stops accepting at once and waits for open connections up to its
``--timeout-graceful-shutdown`` (``GATEWAY_DRAIN_SECONDS``), then cancels what is left and runs
the lifespan shutdown (leases released, usage flushed). What uvicorn cannot know is that some
connections never end by themselves: event streams and WebSockets. On the signal the gateway
therefore, at once:

- answers ``/readyz`` with 503, so a load balancer that still holds a connection moves on;
- ends every event stream cleanly (``EventSource`` clients reconnect, to another instance);
- closes every WebSocket with 1001 "going away" (clients reconnect elsewhere).

Ordinary requests and downloads in flight finish on their own, within the deadline.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("apigw.gateway")


class Drain:
    """This process's shutdown state. ``begin()`` is idempotent."""

    def __init__(self) -> None:
        self.draining = False
        self.since: float | None = None
        # Streams to end when draining begins (upstream.py registers its event streams here).
        self.streams: set[Callable[[], None]] = set()
        self.on_begin: list[Callable[[], None]] = []

    def begin(self) -> None:
        if self.draining:
            return
        self.draining = True
        self.since = time.monotonic()
        log.info("draining: readiness is 503; ending %d event stream(s) and closing WebSockets", len(self.streams))
        for stop in list(self.streams):
            stop()
        for callback in self.on_begin:
            callback()

    def install_signal_handlers(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> bool:
        """Begin draining on these signals, then let the previous handler (the server's) run.

        Only the main thread may set signal handlers: a gateway served from another thread
        (tests) is drained by calling ``begin()``. Returns whether the handlers were installed.
        """
        if threading.current_thread() is not threading.main_thread():
            return False
        loop = asyncio.get_running_loop()
        installed = False
        for sig in signals:
            previous = signal.getsignal(sig)
            if not callable(previous):
                # No server handler to chain to (default or ignored): leave the signal alone
                # rather than change what it does to the process.
                continue

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                # A signal handler runs between bytecodes of the loop's thread: hand over to the
                # loop instead of touching its state from here.
                loop.call_soon_threadsafe(self.begin)
                previous(signum, frame)

            signal.signal(sig, handler)
            installed = True
        return installed
