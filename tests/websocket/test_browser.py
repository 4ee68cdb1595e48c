"""WebSockets from a real browser: headless Chromium (Playwright) opens sockets through a
running gateway process to the demo appliance API's event socket, the way a partner's web app
would, and sees its socket closed with 4401 when the key is revoked from the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from proxy import services
from proxy.models import ApiProduct, Plan, Route, Target, Upstream
from tests.conftest import subprocess_database_url
from tests.servers import ROOT, free_port, gateway_process

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

# Opens a socket, waits for the first message or the close, and reports what happened.
OPEN_SOCKET = """
([url, protocols]) => new Promise((resolve) => {
  const ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
  const result = {opened: false, protocol: null, first: null, code: null};
  const timer = setTimeout(() => { ws.close(); resolve(result); }, 8000);
  ws.onopen = () => { result.opened = true; result.protocol = ws.protocol; };
  ws.onmessage = (event) => { result.first = event.data; clearTimeout(timer); ws.close(); resolve(result); };
  ws.onclose = (event) => { result.code = event.code; clearTimeout(timer); resolve(result); };
})
"""
# Keeps a socket open in the page; the test reads window.closedWith later.
HOLD_SOCKET = """
([url, protocols]) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url, protocols);
  window.closedWith = null;
  ws.onopen = () => resolve(ws.protocol);
  ws.onclose = (event) => { window.closedWith = event.code; reject(new Error("closed " + event.code)); };
})
"""


@pytest.fixture
def gateway(demo_upstream: str) -> Iterator[dict[str, Any]]:
    upstream = Upstream.objects.create(name="demo")
    Target.objects.create(upstream=upstream, url=demo_upstream)
    product = ApiProduct.objects.create(name="Appliances", slug="appliances")
    Route.objects.create(
        name="events",
        path="/api/v1",
        upstream=upstream,
        product=product,
        protocols=["http", "websocket"],
        auth="key",
        allow_query_key=True,
    )
    plan = Plan.objects.create(name="Open", slug="open")
    partner = services.partner_get_or_create(slug="webapp")
    services.subscription_set(partner=partner, product=product, plan=plan)
    key, secret = services.api_key_create(partner=partner, name="browser")
    proc = gateway_process(free_port(), env={"DATABASE_URL": subprocess_database_url()}).start()
    yield {
        # Chromium lets only a page of a loopback origin open loopback sockets (local network
        # access checks): the page comes from the gateway's origin, as a web app's would.
        "page": f"http://127.0.0.1:{proc.port}/healthz",
        "url": f"ws://127.0.0.1:{proc.port}/api/v1/events/ws",
        "secret": secret,
        "prefix": key.prefix,
    }
    proc.stop()


def test_a_browser_opens_sockets_with_the_key_in_the_query_or_a_subprotocol(page: Any, gateway: dict[str, Any]) -> None:
    page.goto(gateway["page"])
    url, secret = gateway["url"], gateway["secret"]

    by_query = page.evaluate(OPEN_SOCKET, [f"{url}?api_key={secret}", None])
    assert by_query["opened"] and by_query["first"], by_query
    # The documented form: a marker plus the key; the upstream picks no protocol, the marker comes back.
    by_protocol = page.evaluate(OPEN_SOCKET, [url, ["apikey", f"apikey.{secret}"]])
    assert by_protocol["opened"] and by_protocol["protocol"] == "apikey" and by_protocol["first"], by_protocol
    # Older snippets offered the key alone: it is echoed back so Chromium accepts the handshake.
    key_only = page.evaluate(OPEN_SOCKET, [url, [f"apikey.{secret}"]])
    assert key_only["opened"] and key_only["first"], key_only
    # Without a key the handshake is refused: the browser never sees an open socket.
    refused = page.evaluate(OPEN_SOCKET, [url, None])
    assert not refused["opened"] and refused["code"] == 1006, refused


def test_revoking_the_key_from_the_cli_closes_the_browsers_socket(page: Any, gateway: dict[str, Any]) -> None:
    page.goto(gateway["page"])
    protocol = page.evaluate(HOLD_SOCKET, [gateway["url"], ["apikey", f"apikey.{gateway['secret']}"]])
    assert protocol == "apikey"
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "APIGW_TEST_CHILD": "1",  # this run's Redis namespace, which the gateway listens on
    }
    revoked = subprocess.run(
        [sys.executable, "manage.py", "apikey", "revoke", gateway["prefix"]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert revoked.returncode == 0, revoked.stderr
    page.wait_for_function("window.closedWith !== null", timeout=10_000)
    assert page.evaluate("window.closedWith") == 4401
