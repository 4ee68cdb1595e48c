"""Every entry point refuses a bad configuration with one line naming the variable (issue 15,
item 4): uvicorn (apigw/asgi.py), `python -m apigw.startup` (the image runs it before uvicorn),
`manage.py runplatform` and `manage.py runserver`. Real processes; none may print a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from apigw.env import env_float
from tests.servers import ROOT, free_port

pytestmark = pytest.mark.timeout(120)

ENTRY_POINTS = {
    "uvicorn": ["-m", "uvicorn", "apigw.asgi:application", "--lifespan", "on", "--port", "{port}"],
    "image preflight": ["-m", "apigw.startup"],
    "runplatform": ["manage.py", "runplatform", "--port", "{port}", "--demo-port", "{port2}"],
    "runserver": ["manage.py", "runserver", "127.0.0.1:{port}"],
}

BAD = {
    # A system check (apigw.E002): the gateway would serve nothing; it used to start and serve.
    "GATEWAY_CONTROL_PREFIXES": {"GATEWAY_CONTROL_PREFIXES": "/"},
    # A settings value: ImproperlyConfigured in settings.py.
    "GATEWAY_READ_TIMEOUT": {"GATEWAY_READ_TIMEOUT": "nan"},
    "SECRET_KEY": {"DEBUG": "false", "SECRET_KEY": ""},
}


def run(entry: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [a.format(port=free_port(), port2=free_port()) for a in ENTRY_POINTS[entry]]
    return subprocess.run(
        [sys.executable, *args],
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
