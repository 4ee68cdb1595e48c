"""Every `python manage.py …` line printed in README.md and docs/ works as written, from a plain
shell, against the platform `make run` started (issue 15 item 8, issue 19 item 3).

A real `make run` (its install step taken as done: the test must not install into the venv),
then each documented line run by `sh -c` with an environment that has no virtualenv, no
DJANGO_SETTINGS_MODULE, no DEBUG, no SECRET_KEY and no REDIS_PREFIX: manage.py must find .venv
and make run's var/dev.env by itself. Synopsis notation is read the way a person does: optional
``[...]`` parts are left out, and the placeholders FILE, PREFIX, NAME and the sample key prefix
``gw_abcdefgh`` stand for a file, the token, the user and the key made by the lines before.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import subprocess_database_url
from tests.servers import ROOT, free_port, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(300)]

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    """(document, line) for every `python manage.py` line inside a fenced block."""
    found = []
    for path in DOCUMENTS:
        fenced = False
        for line in path.read_text().splitlines():
            if line.startswith("```"):
                fenced = not fenced
            elif fenced and line.startswith("python manage.py "):
                found.append((path.name, line))
    return found


def as_run(line: str, values: dict[str, str]) -> str:
    command = re.sub(r"\s+#.*$", "", line)  # a trailing comment
    command = re.sub(r"\s*\[[^\]]*\]", "", command)  # optional parts
    for placeholder, value in values.items():
        command = re.sub(rf"(?<![\w-]){re.escape(placeholder)}(?![\w-])", value, command)
    return command


def plain_shell(dev_env: Path) -> dict[str, str]:
    venv_bin = str(ROOT / ".venv" / "bin")
    path = ":".join(p for p in os.environ["PATH"].split(":") if p and Path(p).resolve() != Path(venv_bin).resolve())
    return {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "APIGW_DEV_ENV": str(dev_env), "LANG": "C.UTF-8"}


def status_with(base: str, key: str) -> int:
    return httpx.get(base + "/api/v1/appliances", headers={"X-API-Key": key}, timeout=5).status_code


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def test_documented_commands_work_from_a_plain_shell_after_make_run(tmp_path: Path) -> None:
    commands = documented_commands()
    assert any("apikey revoke" in line for _, line in commands)  # the parser finds them at all
    port, demo_port = free_port(), free_port()
    dev_env = tmp_path / "dev.env"
    make_env = {
        **plain_shell(dev_env),
        "PORT": str(port),
        "DEMO_PORT": str(demo_port),
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "REDIS_PREFIX": os.environ["REDIS_PREFIX"],
        "APIGW_VAR_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "warning",
    }
    # -o: the venv is installed already (and shared): take its stamp as up to date.
    make = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "run"],
        cwd=ROOT,
        env=make_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert make.stdout is not None
        deadline = time.monotonic() + 120
        printed = []
        while time.monotonic() < deadline:
            line = make.stdout.readline()
            assert line, "make run ended early:\n" + "".join(printed)
            printed.append(line)
            if line.startswith("Demo WebSocket:"):
                break
        assert dev_env.exists()
        base = f"http://127.0.0.1:{port}"
        shell = plain_shell(dev_env)
        values = {"FILE": str(tmp_path / "gateway.yaml"), "NAME": "admin"}
        key = ""
        for document, line in commands:
            if " FILE" in line and not Path(values["FILE"]).exists():
                subprocess.run(
                    ["sh", "-c", f"python manage.py gatewayconfig export {values['FILE']}"],
                    cwd=ROOT,
                    env=shell,
                    check=True,
                    timeout=60,
                )
            command = as_run(line, values)
            result = subprocess.run(
                ["sh", "-c", command], cwd=ROOT, env=shell, capture_output=True, text=True, timeout=60
            )
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"{document}: {command}\n{output}"
            assert "Traceback" not in output, f"{document}: {command}\n{output}"
            if created := re.search(r"Created key (\S+) ", result.stdout):
                values["gw_abcdefgh"] = "gw_" + created.group(1)  # the README's sample prefix
                key = result.stdout.strip().splitlines()[-1]
                # The running gateway knows the new key (same database, same Redis namespace).
                wait_until(
                    lambda key=key: status_with(base, key) == 200,
                    timeout=10,
                )
            if created := re.search(r"Created token (\S+) ", result.stdout):
                values["PREFIX"] = created.group(1)
            if "apikey revoke" in command:
                # Before: another Redis namespace, the gateway learned of it at its next full reload.
                took = wait_until(
                    lambda key=key: status_with(base, key) == 401,
                    timeout=10,
                )
                assert took < 2
        assert key, "no documented command created a key"
    finally:
        runplatform = [pid for pid in children(make.pid)]
        for pid in runplatform:  # Ctrl-C's effect on runplatform: it stops its children
            os.kill(pid, signal.SIGTERM)
        make.wait(timeout=60)
