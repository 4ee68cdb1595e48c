"""``kill -9`` of one instance under load through nginx: only the requests in flight on it fail,
what it counted reaches the database through the others, its WebSocket leases expire, and its
WebSocket clients reconnect to the other instances."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from localcluster.cluster import GatewayInstance
from proxy import configbus
from proxy.gateway.leases import LEASE_SECONDS
from proxy.gateway.vocabulary import key_subject
from tests.cluster.load import Load, Sockets, summary

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

SOCKETS = 6
ORPHAN_AFTER = 60.0  # proxy/usage.py flush_usage's default, what the gateways run


def mix(seq: int) -> tuple[str, str]:
    # POSTs are not retried by nginx: those in flight on the killed instance fail at the client.
    return ("POST", f"/echo/{seq}") if seq % 4 == 0 else ("GET", f"/slow/0.05?n={seq}")


def open_sockets(gateway: GatewayInstance) -> int:
    text = httpx.get(gateway.url + "/metrics", timeout=5).text
    return sum(int(float(m)) for m in re.findall(r'^apigw_websocket_connections\{route="drill"\} (\S+)$', text, re.M))


def live_leases(partner_id: int, key_id: int) -> int:
    names = configbus.keys()
    key = names.socket_lease(names.partner_tag(partner_id), key_subject(key_id))
    return int(configbus.redis_client().zcount(key, int(time.time() * 1000), "+inf"))


@pytest.mark.parametrize("redis", ["single", "cluster"])
def test_kill_9_fails_only_requests_in_flight_on_it_and_loses_no_counted_request(
    redis: str, start_cluster: Callable[..., Any], make_drill: Callable[..., Any], report: Callable[[str], None]
) -> None:
    cluster = start_cluster(3, redis=redis)
    drill = make_drill(cluster, ws_per_key=100)
    ws_headers = {"Authorization": f"Bearer {drill.ws_secret}"}
    sockets = Sockets(cluster.url.replace("http://", "ws://") + "/api/v1/events/ws", ws_headers, SOCKETS).start()
    sockets.wait(lambda s: s.open_now == SOCKETS)
    assert live_leases(drill.partner.pk, drill.ws_key.pk) == SOCKETS
    per_instance = {g.port: open_sockets(g) for g in cluster.gateways}
    assert sum(per_instance.values()) == SOCKETS
    victim = max(cluster.gateways, key=lambda g: per_instance[g.port])
    on_victim = per_instance[victim.port]
    assert on_victim >= 1

    load = Load(cluster.url, drill.headers, mix, max_requests=20_000, seconds=120).start()
    load.wait_count(300)
    killed_at = time.time()
    victim.kill()  # SIGKILL, then waits until the process is reaped
    dead_at = time.time()
    load.wait_count(len(load.outcomes) + 300)
    outcomes = load.finish()

    # Requests nginx had passed to the victim and that were still running when it died.
    lines = {line.seq: line for line in cluster.lb.access_log() if line.seq.isdigit()}
    in_flight = {
        o.seq
        for o in outcomes
        if o.started < dead_at
        and lines[str(o.seq)].finished >= killed_at
        and victim.port in lines[str(o.seq)].upstream_ports
    }
    failed = {o.seq for o in outcomes if not o.ok}
    strays = [(o, lines.get(str(o.seq))) for o in outcomes if o.seq in failed - in_flight]
    assert not strays, f"failures not in flight on the killed instance (killed {killed_at}-{dead_at}): {strays[:5]}"
    retried = {s for s in in_flight if len(lines[str(s)].upstream_ports) > 1 and s not in failed}
    after = [o for o in outcomes if o.started > dead_at]
    assert after and all(o.ok for o in after)
    served_by_victim = sum(
        1 for o in outcomes if o.ok and lines[str(o.seq)].upstream_ports[-1] == victim.port and o.ended < killed_at
    )
    assert served_by_victim > 0

    ok = sum(1 for o in outcomes if o.ok)
    time.sleep(3)  # a few flush periods of the survivors
    soon = drill.usage()
    waiting = drill.in_redis()

    # Its clients reconnect through nginx to the others; its leases expire.
    sockets.wait(lambda s: s.open_now == SOCKETS and s.closed >= on_victim)
    reconnected = max(sockets.opened_at) - killed_at
    assert sockets.closed == on_victim
    assert all(open_sockets(g) for g in cluster.gateways if g is not victim)
    assert live_leases(drill.partner.pk, drill.ws_key.pk) == SOCKETS + on_victim  # the dead instance's, not yet expired
    sockets.wait(lambda _: live_leases(drill.partner.pk, drill.ws_key.pk) == SOCKETS, timeout=LEASE_SECONDS + 5)
    expired = time.time() - killed_at
    sockets.finish()

    # Every request a limiter counted reaches the database through the surviving instances: at
    # least every answered one (the victim's too), at most those plus the attempts that died on
    # the victim after being counted. A batch the victim had claimed when it died is replayed by
    # the others once it is orphan_after (60 s) old.
    usage = drill.wait_usage(ok, timeout=max(5.0, killed_at + ORPHAN_AFTER + 15 - time.time()))
    complete = time.time() - killed_at
    assert ok <= usage["requests"] <= ok + len(in_flight), f"{usage} for {ok} answered; 3 s after: {soon}, {waiting}"
    lost_2xx = ok - usage["status_2xx"]

    report(
        f"kill -9 of 1 of 3 instances under load (Redis {redis}): {summary(outcomes)}; "
        f"in flight on it {len(in_flight)}, of which "
        f"{len(failed)} failed (POSTs, not retried) and {len(retried)} were retried by nginx; "
        f"usage rows {usage['requests']} requests for {ok} answered (3 s after the load {soon['requests']}, "
        f"{waiting['unapplied_batches']} in a batch the victim had claimed; all in {complete:.0f} s); "
        f"2xx counts lost with the process {lost_2xx}; "
        f"{on_victim} WebSockets reconnected elsewhere {reconnected:.1f} s after the kill; its leases expired "
        f"{expired:.1f} s after it (LEASE_SECONDS {LEASE_SECONDS:.0f})"
    )
