"""Active health checks: every instance probes the targets of the upstreams that ask for it.

``GET <target><path>`` every ``interval`` seconds; an answer with one of ``statuses`` within
``timeout`` is a pass. ``unhealthy`` failed checks in a row take the target out of rotation
(``Circuit.checked_down``), ``healthy`` passes in a row put it back, and a pass also closes a
circuit the passive checks opened (the target answers again: no need to wait out the back-off).

Each instance probes on its own, so the probe traffic is ``instances × targets / interval``;
nothing is shared through Redis because every instance reaches the same conclusion by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from proxy.gateway.breaker import CLOSED, Circuit
from proxy.gateway.spec import HealthCheckSpec
from proxy.gateway.tasks import cancel_all

if TYPE_CHECKING:
    from proxy.gateway.balancer import Upstream

log = logging.getLogger("apigw.health")


@dataclass(frozen=True, slots=True)
class HealthCheck:
    path: str
    interval: float = 5.0
    timeout: float = 2.0
    statuses: frozenset[int] = frozenset({200})
    healthy: int = 2
    unhealthy: int = 2

    @classmethod
    def from_spec(cls, spec: HealthCheckSpec | None) -> HealthCheck | None:
        if not spec or not spec.get("path"):
            return None
        path = str(spec["path"])
        if not path.startswith("/"):
            raise ValueError("the health check path must start with '/'")
        check = cls(
            path,
            float(spec.get("interval") or 5.0),
            float(spec.get("timeout") or 2.0),
            frozenset(int(s) for s in spec.get("statuses") or (200,)),
            max(1, int(spec.get("healthy") or 2)),
            max(1, int(spec.get("unhealthy") or 2)),
        )
        if check.interval <= 0 or check.timeout <= 0:
            raise ValueError("the health check interval and timeout must be positive")
        return check


class Prober:
    """One task per upstream with a health check, replaced when its configuration changes."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self._tasks: dict[str, tuple[Any, asyncio.Task[None]]] = {}
        self._wanted: dict[str, tuple[HealthCheck, tuple[str, ...], tuple[Circuit, ...]]] = {}

    def configure(self, upstreams: Mapping[str, Upstream]) -> None:
        """Called on every snapshot swap with circuits already bound."""
        self._wanted = {
            u.name: (u.health_check, tuple(t.url for t in u.targets), u.circuits)
            for u in upstreams.values()
            if u.health_check is not None and u.targets
        }
        if self.session is not None:
            self._reconcile()

    def start(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self._reconcile()

    async def stop(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        self._tasks = {}
        await cancel_all(tasks)

    def _reconcile(self) -> None:
        for name in list(self._tasks):
            signature, task = self._tasks[name]
            wanted = self._wanted.get(name)
            if wanted is None or (wanted[0], wanted[1]) != signature:
                task.cancel()
                del self._tasks[name]
        for name, (check, urls, circuits) in self._wanted.items():
            if name not in self._tasks:
                task = asyncio.create_task(self._run(check, urls, circuits), name=f"health-check-{name}")
                self._tasks[name] = ((check, urls), task)

    async def _run(self, check: HealthCheck, urls: tuple[str, ...], circuits: tuple[Circuit, ...]) -> None:
        while True:
            await asyncio.gather(*(self.probe(check, url, c) for url, c in zip(urls, circuits, strict=True)))
            await asyncio.sleep(check.interval)

    async def probe(self, check: HealthCheck, url: str, circuit: Circuit) -> bool:
        assert self.session is not None
        try:
            async with self.session.get(
                url + check.path,
                timeout=aiohttp.ClientTimeout(total=check.timeout),
                allow_redirects=False,
                headers={"User-Agent": "apigw-health-check"},
            ) as response:
                await response.read()
                passed = response.status in check.statuses
        except (aiohttp.ClientError, OSError, TimeoutError):
            passed = False
        record(circuit, check, passed)
        return passed


def record(circuit: Circuit, check: HealthCheck, passed: bool) -> None:
    streak = circuit.check_streak
    if passed:
        circuit.check_streak = streak + 1 if streak > 0 else 1
        if circuit.checked_down:
            if circuit.check_streak >= check.healthy:
                log.warning("health check: %s of %s passes again", circuit.target, circuit.upstream)
                circuit.set_checked_down(False)
        elif circuit.state != CLOSED:
            circuit.close(local=True)  # it answers again: lift the passive ejection now
    else:
        circuit.check_streak = streak - 1 if streak < 0 else -1
        if not circuit.checked_down and -circuit.check_streak >= check.unhealthy:
            log.warning("health check: %s of %s fails, out of rotation", circuit.target, circuit.upstream)
            circuit.set_checked_down(True)
