"""Bounded load through the local cluster's balancer, from a thread of the test: an asyncio loop
with a few aiohttp workers, a request cap, a deadline and a stop event. Every request carries its
sequence number in ``X-Load-Seq`` so the test can find it in nginx's access log (which instance
served it, whether nginx retried it)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp


@dataclass(frozen=True)
class Outcome:
    seq: int
    method: str
    path: str
    started: float  # time.time(), comparable with nginx's $msec
    ended: float
    status: int  # 0: no HTTP answer (connection refused, reset, timeout)
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400


@dataclass
class Load:
    """``plan(seq)`` gives (method, path) of request ``seq``; ``pause`` between one worker's requests
    keeps the rate modest on a shared machine."""

    base_url: str
    headers: Mapping[str, str]
    plan: Callable[[int], tuple[str, str]]
    max_requests: int = 5_000
    seconds: float = 60.0
    workers: int = 8
    pause: float = 0.005
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def finish(self) -> list[Outcome]:
        """Stop issuing requests, wait for those in flight, return every outcome."""
        self.stop.set()
        assert self._thread is not None
        self._thread.join(timeout=self.seconds + 30)
        assert not self._thread.is_alive(), "load generator did not finish"
        return sorted(self.outcomes, key=lambda o: o.seq)

    def wait_count(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < n and time.monotonic() < deadline:
            time.sleep(0.02)

    async def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        counter = iter(range(self.max_requests))
        timeout = aiohttp.ClientTimeout(total=15)
        connector = aiohttp.TCPConnector(limit=self.workers, force_close=False)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

            async def worker() -> None:
                while not self.stop.is_set() and time.monotonic() < deadline:
                    seq = next(counter, None)
                    if seq is None:
                        return
                    method, path = self.plan(seq)
                    headers = {**self.headers, "X-Load-Seq": str(seq)}
                    started = time.time()
                    try:
                        async with session.request(method, self.base_url + path, headers=headers) as response:
                            await response.read()
                            status, error = response.status, ""
                    except (TimeoutError, aiohttp.ClientError) as exc:
                        status, error = 0, repr(exc)
                    self.outcomes.append(Outcome(seq, method, path, started, time.time(), status, error))
                    await asyncio.sleep(self.pause)

            await asyncio.gather(*(worker() for _ in range(self.workers)))


def summary(outcomes: list[Outcome]) -> str:
    failed = [o for o in outcomes if not o.ok]
    seconds = (max(o.ended for o in outcomes) - min(o.started for o in outcomes)) if outcomes else 0.0
    rate = len(outcomes) / seconds if seconds else 0.0
    kinds: dict[str, int] = {}
    for o in failed:
        kind = str(o.status) if o.status else o.error.split("(")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return f"{len(outcomes)} requests in {seconds:.1f} s ({rate:.0f}/s), {len(failed)} failed {kinds or ''}".strip()


@dataclass
class Sockets:
    """``count`` WebSockets kept open through the balancer from a thread of their own: a socket
    that closes (its instance died) reconnects through the balancer, up to ``max_attempts``
    times, ``retry_pause`` apart. Counts what happened."""

    url: str
    headers: Mapping[str, str]
    count: int
    max_attempts: int = 50
    retry_pause: float = 0.2
    opened: int = 0
    closed: int = 0
    open_now: int = 0
    refused: list[str] = field(default_factory=list)
    opened_at: list[float] = field(default_factory=list)  # time.time() of every successful open
    stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sockets:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def wait(self, predicate: Callable[[Sockets], bool], timeout: float = 30.0) -> float:
        started = time.monotonic()
        while not predicate(self):
            if time.monotonic() - started > timeout:
                raise AssertionError(f"sockets: condition not met within {timeout} s ({self})")
            time.sleep(0.02)
        return time.monotonic() - started

    def finish(self) -> None:
        self.stop.set()
        assert self._thread is not None
        self._thread.join(timeout=15)

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:

            async def keep_one() -> None:
                attempts = 0
                while not self.stop.is_set() and attempts < self.max_attempts:
                    attempts += 1
                    try:
                        async with session.ws_connect(self.url, headers=self.headers, heartbeat=None) as ws:
                            self.opened += 1
                            self.open_now += 1
                            self.opened_at.append(time.time())
                            try:
                                while not self.stop.is_set():
                                    try:
                                        message = await ws.receive(timeout=0.2)
                                    except TimeoutError:
                                        continue
                                    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                                        aiohttp.WSMsgType.ERROR):  # fmt: skip
                                        break
                            finally:
                                self.open_now -= 1
                        if not self.stop.is_set():
                            self.closed += 1
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        self.refused.append(repr(exc))
                    if not self.stop.is_set():
                        await asyncio.sleep(self.retry_pause)

            await asyncio.gather(*(keep_one() for _ in range(self.count)))
