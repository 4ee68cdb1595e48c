"""`make run`: the demo appliance upstream, then the platform, in child processes.

Ctrl-C (or SIGTERM) stops both children by their PIDs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
from django.core.management.base import BaseCommand, CommandError

from apigw.management.commands.loaddemo import ADMIN_USERNAME, ensure_admin, load_demo


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"{what} exited with status {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise CommandError(f"{what} did not answer on {url} within {timeout:.0f} s")


class Command(BaseCommand):
    help = "Run the demo upstream and the platform (gateway + portal + admin) until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--demo-port", type=int, default=int(os.environ.get("DEMO_PORT", "8001")))
        parser.add_argument("--workers", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        host, port, demo_port = options["host"], options["port"], options["demo_port"]
        info = load_demo(f"http://127.0.0.1:{demo_port}")
        password = ensure_admin()
        children: list[subprocess.Popen[bytes]] = []

        def stop(*_: Any) -> None:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()

        def terminate(*_: Any) -> None:
            stop()
            sys.exit(0)

        signal.signal(signal.SIGTERM, terminate)
        try:
            demo = subprocess.Popen([sys.executable, "-m", "demo", "--host", "127.0.0.1", "--port", str(demo_port)])
            children.append(demo)
            _wait_until_up(f"http://127.0.0.1:{demo_port}/healthz", demo, "demo upstream")
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
                    "httptools",
                    "--lifespan",
                    "on",
                    "--no-access-log",
                    "--no-server-header",
                    "--no-date-header",
                    "--no-proxy-headers",
                ]
            )
            children.append(server)
            base = f"http://{host}:{port}"
            _wait_until_up(f"{base}/healthz", server, "platform")
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
