"""Settings come from the environment; a bad value stops start-up naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.servers import ROOT


def check(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("GATEWAY_MAX_BODY_BYTES", "ten", "GATEWAY_MAX_BODY_BYTES must be an integer"),
        ("GATEWAY_CONNECT_TIMEOUT", "-1", "GATEWAY_CONNECT_TIMEOUT must be >= 0.001"),
        ("DEBUG", "maybe", "DEBUG must be a boolean"),
        ("REDIS_URL", "http://x", "REDIS_URL must start with redis://"),
        (
            "REDIS_URL",
            "redis+cluster://127.0.0.1",
            "REDIS_URL is not a valid Redis URL: a cluster seed must be host:port",
        ),
        (
            "REDIS_URL",
            "redis+cluster://127.0.0.1:7000/2",
            "REDIS_URL is not a valid Redis URL: a Redis Cluster has only",
        ),
        ("CHANNEL_REDIS_URL", "redis+cluster://127.0.0.1:7000", "CHANNEL_REDIS_URL is not a plain Redis URL"),
        ("DATABASE_URL", "nosuch://x", "DATABASE_URL"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of json, console"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(name: str, value: str, expected: str) -> None:
    result = check(**{"DEBUG": "true", name: value})
    assert result.returncode != 0
    assert expected in result.stderr


def test_a_cluster_needs_a_plain_redis_for_the_channel_layer() -> None:
    result = check(DEBUG="true", REDIS_URL="redis+cluster://127.0.0.1:7000,127.0.0.1:7001/", CHANNEL_REDIS_URL="")
    assert result.returncode != 0
    assert "CHANNEL_REDIS_URL is required when REDIS_URL is a Redis Cluster" in result.stderr
    fine = check(
        DEBUG="true",
        REDIS_URL="redis+cluster://127.0.0.1:7000,127.0.0.1:7001/",
        CHANNEL_REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert fine.returncode == 0, fine.stderr


def test_secret_key_is_required_without_debug() -> None:
    result = check(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_secrets_can_come_from_files(tmp_path: object) -> None:
    secret = os.path.join(str(tmp_path), "secret")
    with open(secret, "w") as fh:
        fh.write("s3cr3t-from-a-file-that-is-long-enough-for-django-checks-0123456789\n")
    result = check(DEBUG="false", SECRET_KEY_FILE=secret, ALLOWED_HOSTS="gw.example.com")
    assert result.returncode == 0, result.stderr


def test_control_prefix_of_root_is_a_system_check_error() -> None:
    result = check(DEBUG="true", GATEWAY_CONTROL_PREFIXES="/admin/,/")
    assert result.returncode != 0
    assert "apigw.E002" in result.stderr


def test_gateway_defaults_live_in_one_place() -> None:
    # With nothing set, the settings give the dataclass's own defaults (redis_url, prefix and
    # pepper come from other settings).
    code = (
        "import dataclasses, django; django.setup();"
        "from django.conf import settings; from proxy.gateway.config import GatewayConfig;"
        "a, b = GatewayConfig.from_settings(settings), GatewayConfig();"
        "skip = {'redis_url', 'redis_prefix', 'api_key_pepper'};"
        "print([f.name for f in dataclasses.fields(a)"
        " if f.name not in skip and getattr(a, f.name) != getattr(b, f.name)])"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "RATELIMIT_", "USAGE_"))}
    env = {**clean, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "apigw.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
