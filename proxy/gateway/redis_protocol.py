"""A lean Redis connection for the limiter's batches: hiredis packs the commands and parses the replies.

redis-py's pipeline costs about 45 µs per request on the full path here (a Pipeline object per
batch, generic command packing, an ``asyncio.timeout()`` per reply; docs/benchmarks.md). The
limiter sends only EVALSHA and SCRIPT LOAD, one batch at a time (redisbatch.py), so one
connection, one write per batch and one deadline per batch are enough. Anything unexpected
closes the connection; the next batch reconnects. It speaks TCP, TLS and Unix sockets alike,
so production behind TLS keeps the lean path.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import Connection, SSLConnection, parse_url
from redis.exceptions import AuthenticationError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class ScriptConnection:
    """One connection for the limiter's batches, to the server a redis-py client would reach.

    The URL means what it means to every other client of the platform (django-redis, channels-redis,
    the flusher): redis-py parses it and builds its connection object, which is never connected
    but read for host/port or socket path, TLS context, user, password and database. So
    ``?db=3`` and ``/3``, ``rediss://`` with ``ssl_cert_reqs``/``ssl_ca_certs``, ACL users and
    ``unix://`` work the same here and there. The deadline per batch is ``timeout``, whatever the
    URL says.
    """

    def __init__(self, url: str, *, timeout: float = 0.5, node: tuple[str, int] | None = None) -> None:
        options: dict[str, Any] = dict(parse_url(url))
        if node is not None:  # one node of a cluster, with the URL's credentials and TLS options
            options["host"], options["port"] = node
        connection_class = options.pop("connection_class", Connection)
        template = connection_class(**options)  # redis-py's defaults and validation
        self.path: str | None = getattr(template, "path", None)
        self.host: str = getattr(template, "host", "")
        self.port: int = getattr(template, "port", 0)
        self.ssl: ssl.SSLContext | None = template.ssl_context.get() if isinstance(template, SSLConnection) else None
        self.username: str | None = template.username
        self.password: str | None = template.password
        self.db = int(template.db)
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def load_script(self, source: str) -> None:
        """SCRIPT LOAD (after NOSCRIPT: the server restarted or flushed its scripts)."""
        (loaded,) = await self.execute([("SCRIPT", "LOAD", source)])
        if isinstance(loaded, Exception):
            raise loaded

    def setup_commands(self) -> list[list[Any]]:
        """AUTH (as redis-py sends it: a username alone authenticates with an empty password)
        and SELECT, sent in one write before the connection's first batch."""
        setup: list[list[Any]] = []
        if self.username:
            setup.append(["AUTH", self.username, self.password or ""])
        elif self.password:
            setup.append(["AUTH", self.password])
        if self.db:
            setup.append(["SELECT", self.db])
        return setup

    async def _connect(self) -> None:
        if self.path:
            reader, writer = await asyncio.open_unix_connection(self.path)
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        self._reader, self._writer = reader, writer
        try:
            setup = self.setup_commands()
            for command, reply in zip(setup, await self._roundtrip(setup), strict=True):
                if isinstance(reply, Exception):
                    if command[0] == "AUTH":
                        raise AuthenticationError(f"Redis refused the credentials: {reply}")
                    raise RedisConnectionError(f"Redis refused {command[0]}: {reply}")
        except BaseException:
            # Half set up (not authenticated, or in the wrong database): never reused.
            self.close()
            raise

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
        except BaseException:
            # Cancelled mid-batch (or anything else): unread replies would answer the next batch.
            self.close()
            raise

    async def _roundtrip(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        if not commands:
            return []
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        # hiredis' C packer: a batch's EVALSHA carries ≈ 14 arguments per request; packing them in
        # Python cost 2.7 µs per full-path request, this 1.2 (docs/benchmarks.md, fifth pass).
        writer.write(b"".join(hiredis.pack_command(tuple(command)) for command in commands))
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
