"""Keep-alive connections to the upstream targets: one bounded pool per scheme, host and port.

A pool holds at most ``size`` connections (``GATEWAY_UPSTREAM_POOL_SIZE``), in use or idle. A
request takes the most recently used idle one (the least likely to have been closed by the
upstream's keep-alive timeout), else opens one while the pool is below its size, else waits for
one to come back; the wait and the TCP (and TLS) connect share the connect timeout, as with
aiohttp's ``limit_per_host`` before. The upstream's slots in upstream.py stay in front of this
(the fast 503 ``upstream_busy``).

Stale connections: one the upstream closed while idle is known by its EOF and dropped from the
pool as soon as the event loop sees it; one idle for longer than ``IDLE_SECONDS`` is closed when
it comes up or when a connection is returned after it. The race that remains (the upstream
closes just as a request goes out) is recognised by the forwarder: a reused connection that
failed before any byte of the response.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable

from proxy.gateway.balancer import Target
from proxy.gateway.h1client import ConnectFailed, ConnectTimeout, H1Connection

# Upstream servers close idle keep-alive connections after 5 s (uvicorn, Node), 60–75 s (nginx,
# aiohttp); aiohttp's client kept them 15 s. Older ones are not offered to a request.
IDLE_SECONDS = 15.0


class TargetPool:
    """The connections to one target."""

    def __init__(
        self, host: str, port: int, size: int, ssl_context: ssl.SSLContext | None, server_hostname: str | None
    ) -> None:
        self.host = host
        self.port = port
        self.size = max(1, size)
        self.ssl = ssl_context
        self.server_hostname = server_hostname
        self.idle: list[H1Connection] = []
        self.opened = 0  # connections open or being opened, idle or in use
        self.waiters: deque[asyncio.Future[H1Connection | None]] = deque()
        self.closing = False

    def take_idle(self) -> H1Connection | None:
        """The most recently returned connection that is still usable, if any (no await: the
        common case costs no coroutine)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.closed or conn.loop.time() - conn.idle_since > IDLE_SECONDS:
                conn.close()
                continue
            return conn
        return None

    async def acquire(self, connect_timeout: float, fresh: bool = False) -> H1Connection:
        """A connection for one exchange: pooled, new, or the next one released. ``fresh``
        skips the idle ones (after one of them turned out stale)."""
        if not fresh:
            conn = self.take_idle()
            if conn is not None:
                return conn
        try:
            async with asyncio.timeout(connect_timeout):
                while True:
                    if self.opened < self.size:
                        return await self._open()
                    waiter: asyncio.Future[H1Connection | None] = asyncio.get_running_loop().create_future()
                    self.waiters.append(waiter)
                    try:
                        handed = await waiter
                    except BaseException:
                        if waiter.done() and not waiter.cancelled():
                            # Handed over just as the wait ended: pass it on, not lost.
                            self._hand_back(waiter.result())
                        raise
                    if handed is not None and not handed.closed:
                        return handed
                    # None: a connection closed and left room to open another.
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {self.host}:{self.port} within {connect_timeout} s") from None

    async def _open(self) -> H1Connection:
        loop = asyncio.get_running_loop()
        self.opened += 1
        try:
            _, conn = await loop.create_connection(
                lambda: H1Connection(self, loop),
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.server_hostname,
            )
        except BaseException as exc:
            self.opened -= 1
            self._wake_one()
            if isinstance(exc, OSError):  # refused, unreachable, unknown name, TLS (ssl.SSLError)
                raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
            raise
        return conn

    def put(self, conn: H1Connection) -> None:
        """A connection that finished an exchange and may carry another."""
        if self.closing:
            conn.close()
            return
        self._hand_back(conn)

    def _hand_back(self, conn: H1Connection | None) -> None:
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            now = conn.idle_since = conn.loop.time()
            idle = self.idle
            # The oldest idle connections sit at the bottom of the stack after a burst: closed
            # here once they expire, rather than held until the upstream closes them.
            while idle and now - idle[0].idle_since > IDLE_SECONDS:
                idle.pop(0).close()
            idle.append(conn)

    def lost(self, conn: H1Connection) -> None:
        """A connection closed (by either side): its place is free."""
        self.opened -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        if not self.closing:
            self._wake_one()

    def _wake_one(self) -> None:
        if self.waiters:
            self._hand_back(None)

    def close(self) -> None:
        self.closing = True
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class UpstreamClient:
    """The process's pools, one per target address, kept across configuration snapshots."""

    def __init__(self, pool_size: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.pool_size = pool_size
        self._ssl = ssl_context
        self.pools: dict[tuple[str, str, int], TargetPool] = {}

    def pool(self, target: Target) -> TargetPool:
        key = (target.scheme, target.host, target.port)
        pool = self.pools.get(key)
        if pool is None:
            host = target.host.strip("[]")  # IPv6 literals are bracketed in authorities only
            context = None
            if target.scheme == "https":
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()  # system CAs, hostname checked
                context = self._ssl
            pool = self.pools[key] = TargetPool(
                host, target.port, self.pool_size, context, host if context is not None else None
            )
        return pool

    def retain(self, targets: Iterable[Target]) -> None:
        """Close the pools of targets no longer configured (called on every snapshot swap), so
        a target removed by a config change keeps neither sockets nor memory. Connections in
        use finish their exchange and are closed when they come back."""
        wanted = {(target.scheme, target.host, target.port) for target in targets}
        for key in [key for key in self.pools if key not in wanted]:
            self.pools.pop(key).close()

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()
