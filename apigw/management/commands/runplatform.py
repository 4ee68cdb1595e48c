"""`make run`: the demo appliance upstream, then the platform, in child processes.

Ctrl-C (or SIGTERM) stops both children by their PIDs. Before anything starts it refuses, with
one line each, an unmigrated database and a port that is already taken; a server counts as up
only when it gives its own distinctive health answer, not when anything at all answers there.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from apigw.health import LIVE
from apigw.management.commands.loaddemo import ADMIN_USERNAME, ensure_admin, load_demo
from demo.appliances import LIVE as DEMO_LIVE


def _ours(url: str, expected: dict[str, str]) -> bool:
    try:
        response = httpx.get(url, timeout=1.0)
        return response.status_code == 200 and response.json() == expected
    except (httpx.HTTPError, ValueError):
        return False


def _wait_until_up(
    url: str, proc: subprocess.Popen[bytes], what: str, expected: dict[str, str], timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"{what} exited with status {proc.returncode}")
        if _ours(url, expected):
            return
        time.sleep(0.2)
    raise CommandError(f"{what} did not answer on {url} within {timeout:.0f} s")


def _refuse_taken_port(host: str, port: int, variable: str) -> None:
    """Binding is the only reliable test: a server may listen without answering HTTP."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CommandError(
                f"{host}:{port} is already in use ({exc.strerror}); stop what runs there or choose "
                f"another port: {variable}={port + 10} make run"
            ) from None


def _refuse_unmigrated_database() -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise CommandError("the database has unapplied migrations: run `make migrate` (or `python manage.py migrate`)")


class Command(BaseCommand):
    help = "Run the demo upstream and the platform (gateway + portal + admin) until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--demo-port", type=int, default=int(os.environ.get("DEMO_PORT", "8001")))
        parser.add_argument("--workers", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        host, port, demo_port = options["host"], options["port"], options["demo_port"]
        _refuse_unmigrated_database()
        _refuse_taken_port(host, port, "PORT")
        _refuse_taken_port("127.0.0.1", demo_port, "DEMO_PORT")
        info = load_demo(f"http://127.0.0.1:{demo_port}")
        password = ensure_admin()
        children: list[subprocess.Popen[bytes]] = []

        def stop(*_: Any) -> None:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=settings.GATEWAY_DRAIN_SECONDS + 10)
                except subprocess.TimeoutExpired:
                    child.kill()

        def terminate(*_: Any) -> None:
            stop()
            sys.exit(0)

        signal.signal(signal.SIGTERM, terminate)
        try:
            demo = subprocess.Popen([sys.executable, "-m", "demo", "--host", "127.0.0.1", "--port", str(demo_port)])
            children.append(demo)
            _wait_until_up(f"http://127.0.0.1:{demo_port}/healthz", demo, "demo upstream", DEMO_LIVE)
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "apigw.asgi:application",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--workers",
                    str(options["workers"]),
                    "--loop",
                    "uvloop",
                    "--http",
                    "proxy.gateway.edge:EdgeProtocol",  # framing limits (docs/security.md)
                    "--lifespan",
                    "on",
                    "--no-access-log",
                    "--no-server-header",
                    "--no-date-header",
                    "--no-proxy-headers",
                    "--timeout-graceful-shutdown",
                    str(settings.GATEWAY_DRAIN_SECONDS),
                ]
            )
            children.append(server)
            base = f"http://{host}:{port}"
            _wait_until_up(f"{base}/healthz", server, "platform", LIVE)
            lines = [
                "",
                "The platform is running. Ctrl-C stops it.",
                f"Gateway (demo API):  {base}/api/v1/appliances",
                f"Developer portal:    {base}/portal/",
                f"Django admin:        {base}/admin/",
                f"Admin login: {ADMIN_USERNAME} / {password}",
                f"Health:              {base}/healthz  {base}/readyz",
                f"Demo upstream:       http://127.0.0.1:{demo_port}/api/v1/appliances",
            ]
            key = info["key"]
            lines += [
                f"Demo API key: {key}",
                f"Demo WebSocket: ws://{host}:{port}/api/v1/events/ws?api_key={key}",
                f"Demo events (SSE): {base}/api/v1/events?api_key={key}",
                f"Try it: curl -H 'Authorization: Bearer {key}' {base}/api/v1/appliances",
            ]
            self.stdout.write("\n".join(lines) + "\n")
            self.stdout.flush()
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            raise CommandError("a child process exited; stopping")
        except KeyboardInterrupt:
            self.stdout.write("stopping…")
        finally:
            stop()
