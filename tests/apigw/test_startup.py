"""Every entry point refuses a bad configuration with one line naming the variable (issue 15,
item 4): uvicorn (apigw/asgi.py), `python -m apigw.startup` (the image runs it before uvicorn),
`manage.py runplatform`, `manage.py runserver` and the Dockerfile's CMD line as written. Real
processes; none may print a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from apigw.env import env_float
from tests.servers import ROOT, free_port

pytestmark = pytest.mark.timeout(120)

ENTRY_POINTS = {
    "uvicorn": ["-m", "uvicorn", "apigw.asgi:application", "--lifespan", "on", "--port", "{port}"],
    "image preflight": ["-m", "apigw.startup"],
    "runplatform": ["manage.py", "runplatform", "--port", "{port}", "--demo-port", "{port2}"],
    "runserver": ["manage.py", "runserver", "127.0.0.1:{port}"],
    "image CMD": [],  # the Dockerfile's CMD line, see run()
}

BAD = {
    # A system check (apigw.E002): the gateway would serve nothing; it used to start and serve.
    "GATEWAY_CONTROL_PREFIXES": {"GATEWAY_CONTROL_PREFIXES": "/"},
    # A settings value: ImproperlyConfigured in settings.py.
    "GATEWAY_READ_TIMEOUT": {"GATEWAY_READ_TIMEOUT": "nan"},
    "SECRET_KEY": {"DEBUG": "false", "SECRET_KEY": ""},
}


def image_cmd() -> list[str]:
    """The Dockerfile's CMD, exactly as the image runs it (`sh -c "… && exec uvicorn …"`)."""
    match = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert match, "no CMD [...] line in the Dockerfile"
    command: list[str] = json.loads(match.group(1))
    return command


def run(entry: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if entry == "image CMD":
        # Only ever run with a bad configuration here: a good one would listen on 0.0.0.0.
        bin_dir = str(Path(sys.executable).parent)
        env = {**env, "PORT": str(free_port()), "WORKERS": "2", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        command = image_cmd()
    else:
        command = [sys.executable, *(a.format(port=free_port(), port2=free_port()) for a in ENTRY_POINTS[entry])]
    return subprocess.run(
        command,
        cwd=ROOT,
        # No development environment file: only what the test sets counts.
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "apigw.settings", "APIGW_DEV_ENV": "", "DEBUG": "true", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("variable", sorted(BAD))
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(entry: str, variable: str) -> None:
    result = run(entry, BAD[variable])
    assert result.returncode == 2, (result.stdout, result.stderr)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    refusals = [line for line in output.splitlines() if line.startswith("apigw: configuration error:")]
    assert len(refusals) == 1, output
    assert variable in refusals[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_env_float_refuses_values_that_are_not_finite(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("SOME_SECONDS", value)
    with pytest.raises(ImproperlyConfigured, match="SOME_SECONDS must be a finite number"):
        env_float("SOME_SECONDS", 1.0)
