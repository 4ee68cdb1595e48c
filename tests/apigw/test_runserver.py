"""`python manage.py runserver` serves the whole platform (issue 15, item 7): daphne runs no
lifespan, so the gateway starts on first use; proxied HTTP, event streams, WebSockets, portal
and admin all answer. A real runserver process against the demo upstream."""

from __future__ import annotations

import json
import sys

import httpx
import pytest
from websockets.sync.client import connect

from proxy.models import Route, Target, Upstream
from tests.conftest import subprocess_database_url
from tests.servers import Process, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_runserver_serves_gateway_portal_admin_and_websockets(demo_upstream: str) -> None:
    upstream = Upstream.objects.create(name="rs-demo")
    Target.objects.create(upstream=upstream, url=demo_upstream)
    Route.objects.create(name="rs-http", upstream=upstream, path="/api/v1", auth="public")
    Route.objects.create(
        name="rs-ws", upstream=upstream, path="/api/v1/events/ws", auth="public", protocols=["websocket"]
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # --noreload: the test stops the server by its PID; the reloader would leave a child behind.
    proc = Process(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": subprocess_database_url()},
        health_url=base + "/healthz",
        log_name="runserver",
    ).start()
    try:
        # Before: 503 not_ready for every proxied request (no lifespan, no gateway).
        listing = httpx.get(base + "/api/v1/appliances", timeout=20)
        assert listing.status_code == 200, listing.text
        assert "appliances" in listing.json()
        with httpx.stream("GET", base + "/api/v1/events?limit=1", timeout=20) as events:
            assert any(line.startswith("data:") for line in events.iter_lines())
        with connect(f"ws://127.0.0.1:{port}/api/v1/events/ws", open_timeout=20) as ws:
            assert "appliances" in json.dumps(json.loads(ws.recv(timeout=20)))
        assert httpx.get(base + "/portal/", timeout=20).status_code == 200
        assert httpx.get(base + "/admin/login/", timeout=20).status_code == 200
        assert httpx.get(base + "/readyz", timeout=20).status_code == 200
    finally:
        proc.stop()
    assert "Traceback" not in proc.output()
