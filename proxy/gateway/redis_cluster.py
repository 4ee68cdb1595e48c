"""The limiter's lean connection, for a Redis Cluster: one ``ScriptConnection`` per primary.

A batch of EVALSHA calls (redisbatch.py) is split by the slot of each call's first key (every key
of one call shares a hash tag, vocabulary.RedisKeys) and sent to the primaries concurrently, one
write and one read each. The slot map comes from ``CLUSTER SLOTS`` (any node answers it: the
seeds of the URL, then every node seen since).

- ``MOVED``: the slot lives elsewhere now (resharding, failover): remember the new owner, resend
  there at once (the call did not run), and re-read the whole map.
- ``ASK``: the slot is being migrated: resend that one call to the named node after ``ASKING``.
- A primary that cannot be reached: its calls fail with a ``ConnectionError`` in their place
  (the limiter applies ``RATELIMIT_FAILURE_POLICY`` to exactly those requests; calls for the
  other primaries go on). The node is skipped for ``DOWN_BACKOFF`` seconds, so a dead primary
  costs no per-request timeout, and the map is re-read (at most every ``REFRESH_INTERVAL``) until
  a replica has been promoted in its place. Then its slots answer again, exact as before.

Replies come back in the order of the commands, as from ``ScriptConnection.execute``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from proxy.gateway.redis_protocol import ScriptConnection
from proxy.gateway.redis_urls import parse

SLOTS = 16384
DOWN_BACKOFF = 1.0
REFRESH_INTERVAL = 0.25
MAX_REDIRECTS = 3


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_TABLE = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM, the checksum Redis Cluster maps keys to slots with."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def key_slot(key: str | bytes) -> int:
    """The slot of a key: of its hash tag (the first non-empty ``{…}``) if it has one."""
    data = key.encode() if isinstance(key, str) else key
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return crc16(data) % SLOTS


def command_slot(command: Sequence[Any]) -> int:
    """The slot of a command by its first key (EVAL/EVALSHA: the first of KEYS)."""
    name = str(command[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        return key_slot(str(command[3])) if int(command[2]) else 0
    return key_slot(command[1] if isinstance(command[1], bytes) else str(command[1]))


def _address(raw: Any) -> tuple[str, int]:
    host, _, port = (raw.decode() if isinstance(raw, bytes) else str(raw)).rpartition(":")
    return host, int(port)


def _redirect(reply: Any) -> tuple[str, int, tuple[str, int]] | None:
    """("MOVED" | "ASK", slot, node) of a redirection reply, else None."""
    if not isinstance(reply, ResponseError):
        return None
    parts = str(reply).split()
    if len(parts) != 3 or parts[0] not in ("MOVED", "ASK"):
        return None
    return parts[0], int(parts[1]), _address(parts[2])


class ClusterScriptConnection:
    # A dead primary fails only its own calls: the limiter must not back off from all of Redis.
    fails_alone = True

    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        target = parse(url)
        if not target.cluster:
            raise ValueError("ClusterScriptConnection needs a redis+cluster:// URL")
        self.url = target.url
        self.seeds = list(target.seeds)
        self.timeout = timeout
        self.slots: list[tuple[str, int] | None] = [None] * SLOTS
        self.nodes: dict[tuple[str, int], ScriptConnection] = {}
        self.known: list[tuple[str, int]] = []  # every node CLUSTER SLOTS named, replicas too
        self._down: dict[tuple[str, int], float] = {}
        self._stale = True
        self._refresh_after = 0.0
        self.refreshes = 0

    def node(self, address: tuple[str, int]) -> ScriptConnection:
        conn = self.nodes.get(address)
        if conn is None:
            conn = self.nodes[address] = ScriptConnection(self.url, timeout=self.timeout, node=address)
        return conn

    @property
    def primaries(self) -> set[tuple[str, int]]:
        return {node for node in self.slots if node is not None}

    # -- the slot map ---------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Re-read the slot map from the first node that answers."""
        self._refresh_after = time.monotonic() + REFRESH_INTERVAL
        now = time.monotonic()
        candidates = list(dict.fromkeys([*self.primaries, *self.known, *self.seeds]))
        candidates.sort(key=lambda node: self._down.get(node, 0.0) > now)  # live ones first
        for address in candidates:
            try:
                (reply,) = await self.node(address).execute([("CLUSTER", "SLOTS")])
            except (RedisError, OSError):
                continue
            if isinstance(reply, Exception) or not reply:
                continue
            slots: list[tuple[str, int] | None] = [None] * SLOTS
            known: list[tuple[str, int]] = []
            for entry in reply:
                start, end, *nodes = entry
                addresses = [
                    ((n[0].decode() if isinstance(n[0], bytes) else str(n[0])) or address[0], int(n[1])) for n in nodes
                ]
                known.extend(addresses)
                for slot in range(int(start), int(end) + 1):
                    slots[slot] = addresses[0]
            self.slots, self.known = slots, list(dict.fromkeys(known))
            self._stale = False
            self.refreshes += 1
            return
        raise RedisConnectionError("no Redis Cluster node answered CLUSTER SLOTS")

    def _mark_down(self, address: tuple[str, int]) -> None:
        self._down[address] = time.monotonic() + DOWN_BACKOFF
        self._stale = True

    # -- commands -------------------------------------------------------------------------------
    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Replies in order; a command's error (a dead primary's ConnectionError too) in its place."""
        if self._stale and time.monotonic() >= self._refresh_after:
            try:
                await self.refresh()
            except RedisConnectionError:
                if not self.primaries:
                    raise
        replies: list[Any] = [None] * len(commands)
        targets: dict[int, tuple[str, int] | None] = {i: self.slots[command_slot(c)] for i, c in enumerate(commands)}
        asking: set[int] = set()
        for _ in range(MAX_REDIRECTS + 1):
            groups: dict[tuple[str, int], list[int]] = {}
            for i, node in targets.items():
                if node is None:
                    replies[i] = RedisConnectionError("no Redis Cluster node serves this slot")
                    self._stale = True
                else:
                    groups.setdefault(node, []).append(i)
            await asyncio.gather(
                *(self._send(node, index, commands, replies, asking) for node, index in groups.items())
            )
            targets, asking = {}, set()
            for i, reply in enumerate(replies):
                redirect = _redirect(reply)
                if redirect is None:
                    continue
                kind, slot, node = redirect
                targets[i] = node
                if kind == "MOVED":
                    self.slots[slot] = node
                    self._stale = True
                else:
                    asking.add(i)
            if not targets:
                break
        return replies

    async def _send(
        self,
        address: tuple[str, int],
        index: list[int],
        commands: Sequence[Sequence[Any]],
        replies: list[Any],
        asking: set[int],
    ) -> None:
        if self._down.get(address, 0.0) > time.monotonic():
            for i in index:
                replies[i] = RedisConnectionError(f"Redis Cluster node {address[0]}:{address[1]} is down")
            return
        batch: list[Sequence[Any]] = []
        for i in index:
            if i in asking:
                batch.append(("ASKING",))
            batch.append(commands[i])
        try:
            got = await self.node(address).execute(batch)
        except (RedisError, OSError) as exc:
            self._mark_down(address)
            for i in index:
                replies[i] = exc
            return
        position = 0
        for i in index:
            position += i in asking  # skip ASKING's OK
            replies[i] = got[position]
            position += 1

    async def load_script(self, source: str) -> None:
        """SCRIPT LOAD on every primary (each has its own script cache)."""
        if self._stale or not self.primaries:
            await self.refresh()
        loaded = await asyncio.gather(
            *(self.node(node).execute([("SCRIPT", "LOAD", source)]) for node in self.primaries),
            return_exceptions=True,
        )
        for result in loaded:
            # An unreachable primary is skipped: its calls report their own errors.
            if not isinstance(result, BaseException) and isinstance(result[0], Exception):
                raise result[0]

    def close(self) -> None:
        for conn in self.nodes.values():
            conn.close()


def script_connection(url: str, *, timeout: float = 0.5) -> ScriptConnection | ClusterScriptConnection:
    """The limiter's connection for ``REDIS_URL``: one server, or every primary of a cluster."""
    if parse(url).cluster:
        return ClusterScriptConnection(url, timeout=timeout)
    return ScriptConnection(url, timeout=timeout)
