"""`make run`'s command: demo upstream + platform, the printed URLs work, Ctrl-C stops both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import subprocess_database_url
from tests.servers import ROOT, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 60) -> dict[str, str]:
    lines: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"runplatform ended early: {lines}")
        if ":" in line:
            name, _, value = line.partition(":")
            lines[name.strip()] = value.strip()
        if line.startswith(marker):
            return lines
    raise AssertionError(f"no {marker!r} line within {timeout} s: {lines}")


def test_run_serves_the_demo_api_events_and_websocket_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, demo_port = free_port(), free_port()
    env = {
        "DATABASE_URL": subprocess_database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "APIGW_TEST_CHILD": "1",
        "APIGW_VAR_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runplatform", "--port", str(port), "--demo-port", str(demo_port)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = read_until(proc, "Demo WebSocket:")
        key = lines["Demo API key"]
        base = f"http://127.0.0.1:{port}"
        assert lines["Admin login"].startswith("admin / ")
        assert httpx.get(base + "/api/v1/appliances", timeout=10).status_code == 401
        listing = httpx.get(base + "/api/v1/appliances", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert listing.status_code == 200
        assert listing.headers["ratelimit-limit"] == "60"
        assert httpx.get(base + "/portal/", timeout=10).status_code == 200
        assert httpx.get(base + "/admin/login/", timeout=10).status_code == 200
        with httpx.stream("GET", f"{base}/api/v1/events?limit=1", headers={"X-API-Key": key}, timeout=10) as sse:
            assert any(line.startswith("data:") for line in sse.iter_lines())
        ws_url = lines["Demo WebSocket"]
        assert ws_url.startswith(f"ws://127.0.0.1:{port}/")
        with connect(ws_url, open_timeout=10) as ws:
            hello = json.loads(ws.recv(timeout=10))
            assert "appliances" in json.dumps(hello)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    for p in (port, demo_port):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{p}/healthz", timeout=2)


def runplatform(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "runplatform", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "APIGW_TEST_CHILD": "1", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("taken", ["PORT", "DEMO_PORT"])
def test_a_taken_port_stops_run_with_one_line(taken: str, tmp_path: Path) -> None:
    """Before: "The platform is running" with URLs pointing at the other server, then a hang."""
    import socket

    port, demo_port = free_port(), free_port()
    with socket.socket() as other:  # another server on the port (it need not even answer)
        other.bind(("127.0.0.1", port if taken == "PORT" else demo_port))
        other.listen()
        started = time.monotonic()
        result = runplatform(
            "--port",
            str(port),
            "--demo-port",
            str(demo_port),
            env={"DATABASE_URL": subprocess_database_url(), "APIGW_VAR_DIR": str(tmp_path)},
        )
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    assert "The platform is running" not in result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "already in use" in lines[0] and f"{taken}=" in lines[0]


def test_an_unmigrated_database_says_what_to_do(tmp_path: Path) -> None:
    result = runplatform(
        "--port",
        str(free_port()),
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}", "APIGW_VAR_DIR": str(tmp_path)},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "CommandError: the database has unapplied migrations: run `make migrate` (or `python manage.py migrate`)"
    ]
