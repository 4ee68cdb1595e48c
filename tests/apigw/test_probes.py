"""Probes and scrapes in production mode (issue 15, item 1): DEBUG off and a real ALLOWED_HOSTS,
which neither the pod IP of a Kubernetes probe nor the Docker HEALTHCHECK's 127.0.0.1 is in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from apigw import health
from proxy.gateway.drain import Drain
from tests.conftest import subprocess_database_url
from tests.servers import ROOT, Process, free_port, gateway_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

PRODUCTION = {
    "DEBUG": "false",
    "ALLOWED_HOSTS": "api.example.com",
    "SECRET_KEY": "a-production-secret-for-the-test-" + "x" * 20,
    "LOG_LEVEL": "info",
    "LOG_FORMAT": "json",
}


@pytest.fixture
def production_gateway() -> Iterator[Process]:
    port = free_port()
    proc = gateway_process(port, env={"DATABASE_URL": subprocess_database_url(), **PRODUCTION}).start()
    yield proc
    proc.stop()


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK command, exactly as the image runs it."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    match = re.search(r"HEALTHCHECK [^\n]*\\\n\s*CMD (\[.*\])", dockerfile)
    assert match, "no HEALTHCHECK ... CMD [...] in the Dockerfile"
    command: list[str] = json.loads(match.group(1))
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def test_probes_and_metrics_answer_any_host_in_production_mode(production_gateway: Process) -> None:
    base = f"http://127.0.0.1:{production_gateway.port}"
    # Host: 127.0.0.1:PORT, as the HEALTHCHECK and a probe by pod IP send it.
    live = httpx.get(base + "/healthz", timeout=10)
    assert live.status_code == 200
    assert live.json() == {"status": "ok", "service": "apigw"}
    ready = httpx.get(base + "/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["snapshot"]["ok"] is True
    scrape = httpx.get(base + "/metrics", timeout=10)
    assert scrape.status_code == 200
    assert "apigw_redis_up 1.0" in scrape.text
    assert httpx.head(base + "/healthz", timeout=10).status_code == 200
    assert httpx.post(base + "/healthz", timeout=10).status_code == 405
    # The image's HEALTHCHECK line passes against it.
    result = subprocess.run(
        healthcheck_command(),
        env={**os.environ, "PORT": str(production_gateway.port)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    # Probes are not errors: no ERROR line, no stack trace (before: one per probe).
    output = production_gateway.output()
    assert "Invalid HTTP_HOST" not in output
    assert '"log.level": "error"' not in output.lower()
    # Everything else Django serves is still host-validated.
    assert httpx.get(base + "/portal/", timeout=10).status_code == 400
    assert httpx.get(base + "/portal/", headers={"Host": "api.example.com"}, timeout=10).status_code != 400


def test_readiness_fails_as_soon_as_draining_begins(monkeypatch: pytest.MonkeyPatch) -> None:
    class Store:
        snapshot: Any = None

    class FakeGateway:
        store = Store()
        drain = Drain()

    gateway = FakeGateway()
    monkeypatch.setattr("apigw.runtime.gateway", gateway)
    gateway.store.snapshot = type("S", (), {"version": 1, "built_at": 0.0})()
    monkeypatch.setattr(health, "redis_check", lambda: ({"ok": True}, 1))
    body, status = health.readiness()
    assert status == 200, body
    gateway.drain.begin()
    body, status = health.readiness()
    assert status == 503
    assert body["checks"]["draining"] == {"ok": False}
