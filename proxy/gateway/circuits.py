"""Every circuit of this instance, kept across snapshot swaps and shared with the other instances.

Sharing costs the request path nothing: a circuit that opens or closes here is queued in memory
and a background task sends the queue in one script call (HSET/HDEL on ``{p}circuits`` plus a
PUBLISH on ``{p}circuits:changed``). Every instance subscribes to the channel and applies what
the others found at once (``Circuit.adopt``), and re-reads the hash every
``GATEWAY_HEALTH_POLL_SECONDS`` for messages it missed and when it starts. So one instance's
discovery protects the others within milliseconds, and a target that comes back is closed
everywhere by the first instance whose half-open probe (or active health check) succeeds.

The poll only adopts ejections. An instance that missed a "closed" message keeps the target out
until its ``until`` and then probes it itself: one request late, never wrong.

With Redis down each instance keeps its own breakers working, exactly as without sharing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

import aiohttp
from redis.exceptions import RedisError

from proxy.gateway import metrics
from proxy.gateway.balancer import Upstream
from proxy.gateway.breaker import CLOSED, OPEN, Circuit
from proxy.gateway.probes import Prober
from proxy.gateway.redis_urls import AsyncClient, listen
from proxy.gateway.tasks import cancel_all
from proxy.gateway.vocabulary import RedisKeys

log = logging.getLogger("apigw.health")

# ARGV: channel, now (ms), then per change: kind ("o" open / "c" closed), key, until (ms), openings.
# An opening is kept only if it ejects for longer than what is stored; entries that nobody has
# refreshed for an hour (removed targets) are dropped while we are at it.
_SHARE = """
local hash, channel, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV, 4 do
  local kind, key, untilms, openings = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  if kind == 'o' then
    local stored = redis.call('HGET', hash, key)
    local stored_until = stored and tonumber(string.match(stored, '^(%d+)')) or 0
    if untilms > stored_until then
      redis.call('HSET', hash, key, untilms .. ' ' .. openings)
      redis.call('PUBLISH', channel, 'o ' .. untilms .. ' ' .. openings .. ' ' .. key)
    end
  elseif redis.call('HDEL', hash, key) == 1 then
    redis.call('PUBLISH', channel, 'c 0 0 ' .. key)
  end
end
local entries = redis.call('HGETALL', hash)
for i = 1, #entries, 2 do
  local untilms = tonumber(string.match(entries[i + 1], '^(%d+)')) or 0
  if untilms + 3600000 < now then redis.call('HDEL', hash, entries[i]) end
end
return 1
"""


class CircuitRegistry:
    def __init__(self, redis: AsyncClient, keys: RedisKeys, *, poll_seconds: float = 1.0) -> None:
        self.redis = redis
        self.keys = keys
        self.poll_seconds = poll_seconds
        self.circuits: dict[str, Circuit] = {}
        self.upstreams: dict[str, Upstream] = {}
        self.prober = Prober()
        self._pending: dict[str, tuple[str, int, int]] = {}  # key → (kind, until ms, openings)
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._script = redis.register_script(_SHARE)
        self._warned = 0.0

    # -- binding circuits to the compiled upstreams --------------------------------------------
    def bind(self, upstreams: Mapping[str, Upstream]) -> None:
        """On every snapshot swap: give each upstream the circuits of its targets, the same
        objects as before when the target was already there (its state survives the reload),
        and the running state of its previous version (Upstream.inherit)."""
        live: dict[str, Circuit] = {}
        for upstream in upstreams.values():
            previous = self.upstreams.get(upstream.name)
            if previous is not None and previous is not upstream:
                upstream.inherit(previous)
            circuits = []
            for fresh in upstream.circuits:
                circuit = self.circuits.get(fresh.key)
                if circuit is None:
                    circuit = fresh
                    circuit.listener = self._changed
                    metrics.set_target_health(circuit.upstream, circuit.target, True)
                    metrics.set_circuit_state(circuit.upstream, circuit.target, CLOSED)
                else:
                    circuit.settings = fresh.settings
                circuits.append(circuit)
                live[circuit.key] = circuit
            upstream.circuits = tuple(circuits)
        self.circuits = live
        self.upstreams = dict(upstreams)
        self.prober.configure(upstreams)

    def _changed(self, circuit: Circuit, previous: str, local: bool) -> None:
        state = circuit.state
        metrics.set_circuit_state(circuit.upstream, circuit.target, state)
        metrics.set_target_health(circuit.upstream, circuit.target, state == CLOSED and not circuit.checked_down)
        if state != previous:
            log.warning("circuit %s: %s → %s%s", circuit.key, previous, state, "" if local else " (shared)")
        if not local:
            return
        if state == OPEN:
            self._queue(circuit.key, ("o", int(circuit.until * 1000), circuit.openings))
        elif state == CLOSED and previous != CLOSED:
            self._queue(circuit.key, ("c", 0, 0))

    def _queue(self, key: str, change: tuple[str, int, int]) -> None:
        self._pending[key] = change  # the latest state of a circuit is all that matters
        if self._wake is not None:
            self._wake.set()

    # -- background ----------------------------------------------------------------------------
    async def start(self, session: aiohttp.ClientSession) -> None:
        self._wake = asyncio.Event()
        if self._pending:
            self._wake.set()
        self._tasks = [
            asyncio.create_task(self._send(), name="circuits-send"),
            asyncio.create_task(self._listen(), name="circuits-listen"),
            asyncio.create_task(self._poll(), name="circuits-poll"),
        ]
        self.prober.start(session)

    async def stop(self) -> None:
        await self.prober.stop()
        await cancel_all(self._tasks)
        self._tasks = []
        if self._pending:
            with contextlib.suppress(RedisError, OSError):
                await self.flush()

    async def flush(self) -> None:
        """Send the queued openings and closings now (one script call)."""
        if not self._pending:
            return
        changes, self._pending = self._pending, {}
        args: list[str | int] = [self.keys.circuits_channel, int(time.time() * 1000)]
        for key, (kind, until, openings) in changes.items():
            args += [kind, key, until, openings]
        await self._script(keys=[self.keys.circuits], args=args)

    async def _send(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except (RedisError, OSError) as exc:
                # Dropped: this instance's circuits still work, the others find out by themselves.
                self._warn("could not share circuit states: %s", exc)

    def apply(self, message: str) -> None:
        """``o <until ms> <openings> <key>`` or ``c 0 0 <key>``, as the script publishes them."""
        parts = message.split(" ", 3)
        if len(parts) != 4:
            return
        circuit = self.circuits.get(parts[3])
        if circuit is None:
            return
        if parts[0] == "o":
            circuit.adopt(int(parts[1]) / 1000, int(parts[2]))
        elif parts[0] == "c" and circuit.state != CLOSED:
            circuit.close(local=False)

    async def _listen(self) -> None:
        async def on_message(data: bytes | str) -> None:
            self.apply(_text(data))

        await listen(
            self.redis,
            self.keys.circuits_channel,
            on_message,
            on_subscribed=self.poll,  # what changed while we were not listening
            on_lost=lambda exc: self._warn("circuit channel lost (%s); retrying, the poll covers the gap", exc),
        )

    async def poll(self) -> None:
        stored = await self.redis.hgetall(self.keys.circuits)
        for raw_key, raw_value in stored.items():
            circuit = self.circuits.get(_text(raw_key))
            if circuit is None:
                continue
            until, _, openings = _text(raw_value).partition(" ")
            if until.isdigit() and openings.isdigit():
                circuit.adopt(int(until) / 1000, int(openings))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.poll()
            except (RedisError, OSError) as exc:
                self._warn("could not read shared circuit states: %s", exc)

    def _warn(self, message: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned > 60:
            self._warned = now
            log.warning(message, exc)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
