"""The revocation fast path (the channel layer) on an idle instance: quiet, and still fast.

channels-redis blocks in BZPOPMIN for 5 s at a time; redis-py 8 gives every connection a 5 s
socket timeout by default. Unless the layer's socket timeout is longer, every wait races the
timeout: an idle instance logged ``revocation channel error: Timeout reading from …`` every 6 s and
its listener slept a second after each (a revocation arriving then waited for it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from proxy import services
from proxy.models import ApiProduct, Plan, Route, Target, Upstream
from tests.conftest import subprocess_database_url
from tests.servers import Process, free_port, gateway_process
from tests.upstreams import WebSocketUpstream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]

IDLE_SECONDS = 16  # past three of channels-redis' 5 s BZPOPMIN waits


def test_the_layer_socket_timeout_outlasts_its_blocking_wait() -> None:
    hosts = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
    assert all(host["socket_timeout"] > RedisChannelLayer.brpop_timeout for host in hosts)


@pytest.fixture
def setup(ws_upstream: WebSocketUpstream) -> dict[str, Any]:
    upstream = Upstream.objects.create(name="ws")
    Target.objects.create(upstream=upstream, url=ws_upstream.url)
    product = ApiProduct.objects.create(name="Events", slug="events")
    Route.objects.create(name="ws", path="/ws", auth="key", upstream=upstream, protocols=["websocket"], product=product)
    plan = Plan.objects.create(name="Open", slug="open")
    partner = services.partner_get_or_create(slug="ivy")
    services.subscription_set(partner=partner, product=product, plan=plan)
    key, secret = services.api_key_create(partner=partner, name="ivy")
    return {"key": key, "secret": secret}


@pytest.fixture
def gateway(setup: dict[str, Any]) -> Iterator[Process]:
    # WARNING is the level production logs at; what an idle instance prints there, an operator sees.
    env = {"DATABASE_URL": subprocess_database_url(), "LOG_LEVEL": "warning", "LOG_FORMAT": "console"}
    proc = gateway_process(free_port(), env=env).start()
    yield proc
    proc.stop()


def test_an_idle_instance_logs_nothing_and_revokes_within_a_second(gateway: Process, setup: dict[str, Any]) -> None:
    key = setup["key"]
    with connect(
        f"ws://127.0.0.1:{gateway.port}/ws", additional_headers={"Authorization": f"Bearer {setup['secret']}"}
    ) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"  # the relay joined the key's group
        time.sleep(IDLE_SECONDS)
        # Straight through the channel layer, not a revocation: the snapshot swap that follows a
        # real revocation would close the socket too and hide a slow fast path.
        group = f"apikey.{key.pk}"
        sent_at = time.monotonic()
        async_to_sync(get_channel_layer().group_send)(
            group, {"type": "credentials.revoked", "group": group, "reason": "API key revoked"}
        )
        with pytest.raises(ConnectionClosed) as caught:
            ws.recv(timeout=3)
        took = time.monotonic() - sent_at
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 4401
    assert took < 1.0
    log = gateway.output()
    assert "revocation channel error" not in log
    loud = [line for line in log.splitlines() if any(f" {level} " in line for level in ("WARNING", "ERROR"))]
    assert loud == [], log
