"""A lean Redis connection for the limiter's batches: RESP encoding by hand, hiredis parsing.

redis-py's pipeline costs about 45 µs per request on the full path here (a Pipeline object per
batch, generic command packing, an ``asyncio.timeout()`` per reply; docs/benchmarks.md). The
limiter sends only EVALSHA and SCRIPT LOAD, one batch at a time (redisbatch.py), so one
connection, one write per batch and one deadline per batch are enough. Anything unexpected
closes the connection; the next batch reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def encode(args: Sequence[Any]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        else:
            data = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class ScriptConnection:
    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        parts = urlsplit(url)
        if parts.scheme != "redis":  # rediss:// and unix:// go through redis-py (see redisbatch.py)
            raise ValueError(f"ScriptConnection speaks redis:// only, got {parts.scheme}://")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.password = unquote(parts.password) if parts.password else None
        self.username = unquote(parts.username) if parts.username else None
        self.db = int(parts.path.strip("/") or 0)
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._reader, self._writer = reader, writer
        setup: list[list[Any]] = []
        if self.password is not None:
            setup.append(["AUTH", self.username, self.password] if self.username else ["AUTH", self.password])
        if self.db:
            setup.append(["SELECT", self.db])
        for reply in await self._roundtrip(setup):
            if isinstance(reply, Exception):
                raise RedisConnectionError(f"Redis refused the connection setup: {reply}")
        return reader, writer

    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Replies in order; a command's error is returned in its place (NoScriptError for
        NOSCRIPT). Connection trouble raises redis-py's ConnectionError / TimeoutError."""
        try:
            async with asyncio.timeout(self.timeout):
                if self._writer is None:
                    await self._connect()
                return await self._roundtrip(commands)
        except TimeoutError:
            self.close()
            raise RedisTimeoutError("Redis did not answer in time") from None
        except (OSError, EOFError, hiredis.ProtocolError) as exc:
            self.close()
            raise RedisConnectionError(f"Redis connection failed: {exc}") from exc

    async def _roundtrip(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        if not commands:
            return []
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        writer.write(b"".join(encode(command) for command in commands))
        parser = hiredis.Reader(replyError=ResponseError)
        replies: list[Any] = []
        while len(replies) < len(commands):
            reply = parser.gets()
            if reply is False:
                data = await reader.read(65536)
                if not data:
                    raise EOFError("Redis closed the connection")
                parser.feed(data)
                continue
            if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"):
                reply = NoScriptError(str(reply))
            replies.append(reply)
        return replies

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._reader = self._writer = None


class PipelineConnection:
    """The same interface over redis-py, for URLs ScriptConnection does not speak (TLS, unix)."""

    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)

    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

    def close(self) -> None:
        # Closing needs the loop; the pool's connections are dropped with the process.
        pass


def script_connection(url: str, *, timeout: float = 0.5) -> ScriptConnection | PipelineConnection:
    if url.startswith("redis://"):
        return ScriptConnection(url, timeout=timeout)
    return PipelineConnection(url, timeout=timeout)
