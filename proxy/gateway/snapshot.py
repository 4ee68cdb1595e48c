"""The configuration snapshot the data plane serves from, and how it stays current.

The control plane describes the configuration as plain data (``proxy/snapshot_builder.py`` builds it
from the database); ``Snapshot.compile`` turns that into immutable lookup structures. The
``ConfigStore`` swaps in a new snapshot when the config version in Redis moves: at once on a
pub/sub message, and by polling every few seconds in case a message was missed. A rebuild swaps
one reference, so in-flight requests finish on the snapshot they started with.

The last good snapshot is also kept in Redis, so an instance that starts while the database is
down still serves the configuration every other instance is serving.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from proxy.gateway import metrics
from proxy.gateway.auth import AuthIndex, RoutePolicy
from proxy.gateway.balancer import Upstream
from proxy.gateway.config import GatewayConfig
from proxy.gateway.iprules import IpRules
from proxy.gateway.policy import TrafficPolicy
from proxy.gateway.redis_urls import AsyncClient, listen
from proxy.gateway.routing import Route, RouteConfigError, RouteTable
from proxy.gateway.spec import SnapshotData
from proxy.gateway.tasks import cancel_all
from proxy.gateway.vocabulary import RedisKeys

log = logging.getLogger("apigw.config")

SnapshotLoader = Callable[[], SnapshotData]

# Keep the stored snapshot only if it is not older than the one already there: two instances
# that reload at once must not leave the older configuration behind.
_STORE_IF_NEWER = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if tonumber(ARGV[1]) >= current then
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'data', ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    routes: RouteTable
    upstreams: Mapping[str, Upstream]
    auth: AuthIndex
    data: SnapshotData
    built_at: float = field(default_factory=time.time)
    # Traffic policies by route name (policy.py) and IP rules by partner id (iprules.py).
    traffic: Mapping[str, TrafficPolicy] = field(default_factory=dict)
    partner_ips: Mapping[int, IpRules] = field(default_factory=dict)

    @classmethod
    def compile(cls, data: SnapshotData, version: int) -> Snapshot:
        """Compile plain data. A broken route or upstream is left out and logged, so one bad
        row cannot take the whole configuration down."""
        upstreams: dict[str, Upstream] = {}
        for upstream_spec in data.get("upstreams", ()):
            try:
                upstreams[upstream_spec["name"]] = Upstream(upstream_spec)
            except (KeyError, ValueError, TypeError) as exc:
                log.error("upstream %r left out of snapshot %s: %s", upstream_spec.get("name"), version, exc)
        routes: list[Route] = []
        traffic: dict[str, TrafficPolicy] = {}
        for spec in data.get("routes", ()):
            try:
                route = Route(spec)
                route.policy = RoutePolicy.from_spec(spec)
                traffic[route.name] = TrafficPolicy(spec)
                routes.append(route)
            except (RouteConfigError, ValueError, TypeError) as exc:
                log.error("route %r left out of snapshot %s: %s", spec.get("name"), version, exc)
        partner_ips: dict[int, IpRules] = {}
        for partner in data.get("partners", ()):
            try:
                rules = IpRules(partner.get("ip_allow") or (), partner.get("ip_deny") or ())
            except ValueError as exc:  # refuse everything rather than let a broken allow list open up
                log.error("partner %r: IP rules do not compile, refusing its calls: %s", partner.get("slug"), exc)
                rules = IpRules(allow=["0.0.0.0/32"])
            if rules:
                partner_ips[partner["id"]] = rules
        return cls(
            version=version,
            routes=RouteTable(routes),
            upstreams=upstreams,
            auth=AuthIndex(data),
            data=data,
            traffic=traffic,
            partner_ips=partner_ips,
        )


def dumps_in_slices(data: Mapping[str, Any], size: int = 1000) -> str:
    """``json.dumps(data, separators=(",", ":"))``, a slice of each list at a time: the C encoder
    holds the GIL for a whole call (300 ms for 50k partners), slices let the event loop in."""
    encode = json.JSONEncoder(separators=(",", ":")).encode
    parts: list[str] = []
    for name, value in data.items():
        if isinstance(value, list):
            items = ",".join(encode(value[i : i + size])[1:-1] for i in range(0, len(value), size))
            body = f"[{items}]"
        else:
            body = encode(value)
        parts.append(f"{encode(name)}:{body}")
    return "{" + ",".join(parts) + "}"


class ConfigStore:
    def __init__(self, config: GatewayConfig, loader: SnapshotLoader, redis: AsyncClient, keys: RedisKeys) -> None:
        self.config = config
        self.loader = loader
        self.redis = redis
        self.keys = keys
        self.snapshot: Snapshot | None = None
        self.last_error: str = ""
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._store_script = redis.register_script(_STORE_IF_NEWER)
        self.on_swap: list[Callable[[Snapshot], None]] = []

    async def start(self) -> None:
        await self.refresh(force=True)
        self._tasks = [
            asyncio.create_task(self._listen(), name="config-listen"),
            asyncio.create_task(self._poll(), name="config-poll"),
        ]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []

    async def _remote_version(self) -> int | None:
        try:
            raw = await self.redis.get(self.keys.config_version)
        except (RedisError, OSError) as exc:
            metrics.count_redis_error("config")
            log.warning("config version unreadable from Redis: %s", exc)
            return None
        return int(raw or 0)

    async def refresh(self, *, force: bool = False) -> bool:
        """Load a new snapshot if the version moved (or ``force``). True if one was swapped in."""
        async with self._lock:
            version = await self._remote_version()
            current = self.snapshot
            if not force and current is not None and version is not None and version == current.version:
                return False
            if version is None:
                version = current.version if current is not None else 0
            started = time.perf_counter()
            try:
                # Load, compile and serialise in one worker thread: at 100k partners compiling
                # and json.dumps take hundreds of ms, which on the event loop would stall every
                # request in flight (docs/benchmarks.md, "Snapshot reload").
                snapshot, payload = await asyncio.to_thread(self._build, version)
            except Exception as exc:  # the database may be down: keep serving what we have
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "config snapshot load failed, keeping version %s: %s",
                    current.version if current else None,
                    self.last_error,
                )
                if current is None:
                    return await self._load_stored()
                return False
            self._swap(snapshot)
            metrics.observe_snapshot(snapshot.version, snapshot.built_at, time.perf_counter() - started)
            self.last_error = ""
            log.info(
                "config snapshot %s loaded: %d routes in %.1f ms",
                version,
                len(snapshot.routes),
                (time.perf_counter() - started) * 1000,
            )
            await self._store(snapshot.version, payload, replace=force)
            return True

    def _build(self, version: int) -> tuple[Snapshot, bytes | None]:
        """Worker thread: the loader, the compile and the serialised copy kept in Redis.

        A thread alone does not spare the event loop: the build allocates hundreds of thousands
        of objects, which sets off the cyclic garbage collector, and a collection stops every
        thread while it walks the whole heap (measured at 50k partners: 360 ms of loop stall in
        the load and 285 ms in the compile with the collector on, 44 ms and 17 ms with it off).
        The build makes no reference cycles worth collecting, so the collector waits.

        Waiting is not enough: once enabled, the collector's next young pass walks every object
        the build made (measured at 10k routes: one 80-115 ms pass, holding the GIL, so the
        loop stalls), and every later full pass walks the whole snapshot again. So the snapshot
        is frozen (``gc.freeze``): the collector never walks it, and reference counting still
        frees it when the next one replaces it (the compiled snapshot has no cycles; a test
        holds that). What the freeze would keep forever is other cyclic garbage alive at that
        moment, so a full pass runs first - cheap once everything long-lived is frozen; before
        the first freeze it would walk the whole heap (400 ms in the test process), so the first
        build freezes start-up's few leftovers instead."""
        collecting = gc.isenabled()
        if collecting and gc.get_freeze_count():
            gc.collect()
        gc.disable()
        try:
            snapshot = Snapshot.compile(self.loader(), version)
            try:
                # Encoded here too: 26 MB at 100k partners, not a copy to make on the loop.
                payload: bytes | None = dumps_in_slices(snapshot.data).encode()
            except (TypeError, ValueError) as exc:
                log.warning("snapshot %s cannot be kept in Redis: %s", version, exc)
                payload = None
        finally:
            if collecting:
                gc.freeze()
                gc.enable()
        return snapshot, payload

    def _swap(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        for callback in self.on_swap:
            callback(snapshot)

    async def _store(self, version: int, payload: bytes | None, *, replace: bool = False) -> None:
        if payload is None:
            return
        try:
            # Every instance reloads on the same bump: the first one uploads the copy, the others
            # see its version and do not send the same megabytes again. A forced (full) reload
            # replaces a copy of its own version: it may carry changes made without a bump. The
            # script still keeps an older copy from winning a race.
            if not replace:
                stored = await self.redis.hget(self.keys.config_snapshot, "version")
                if stored is not None and int(stored) >= version:
                    return
            await self._store_script(keys=[self.keys.config_snapshot], args=[version, payload])
        except (RedisError, OSError) as exc:
            log.warning("could not keep snapshot %s in Redis: %s", version, exc)

    async def _load_stored(self) -> bool:
        try:
            stored = await self.redis.hgetall(self.keys.config_snapshot)
        except (RedisError, OSError) as exc:
            log.error("no snapshot available from Redis either: %s", exc)
            return False
        if not stored:
            return False
        version = int(stored[b"version"])
        raw = stored[b"data"]
        snapshot = await asyncio.to_thread(lambda: Snapshot.compile(json.loads(raw), version))
        self._swap(snapshot)
        metrics.observe_snapshot(snapshot.version, snapshot.built_at, None)
        log.warning("serving stored snapshot %s until the database answers", version)
        return True

    async def _poll(self) -> None:
        refresh_every = self.config.config_refresh_seconds
        last_full = time.monotonic()
        while True:
            await asyncio.sleep(self.config.config_poll_seconds)
            try:
                # A full reload now and then also catches changes that bypassed the version bump
                # (raw SQL, a Redis that was down when the change was made).
                force = self.snapshot is None or time.monotonic() - last_full > refresh_every
                if force:
                    last_full = time.monotonic()
                await self.refresh(force=force)
            except Exception:  # never let the poller die
                log.exception("config poll failed")

    async def _listen(self) -> None:
        async def on_message(_data: bytes | str) -> None:
            await self.refresh()

        await listen(
            self.redis,
            self.keys.config_channel,
            on_message,
            on_lost=lambda exc: log.warning("config channel lost (%s); retrying, the poll covers the gap", exc),
        )
