"""Production settings: `check --deploy` passes with the documented environment (docs/security.md),
every Django page carries the CSP, staff sessions are short."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.servers import ROOT

# The production environment of docs/security.md, nothing else.
PRODUCTION = {
    "SECRET_KEY": "k" * 20 + "-production-secret-key-that-is-long-and-random-0123456789",
    "ALLOWED_HOSTS": "api.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://api.example.com",
    "TRUST_X_FORWARDED_PROTO": "true",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def check_deploy(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "apigw.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(120)
def test_check_deploy_passes_cleanly_with_the_documented_production_environment() -> None:
    result = check_deploy(**PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.timeout(120)
def test_check_deploy_names_the_hsts_promises_left_to_the_operator() -> None:
    env = {k: v for k, v in PRODUCTION.items() if not k.startswith("SECURE_HSTS_")}
    result = check_deploy(**env)
    assert result.returncode != 0
    assert "security.W005" in result.stderr + result.stdout and "security.W004" not in result.stderr


@pytest.mark.django_db
def test_the_admin_and_the_api_docs_carry_the_csp_with_local_assets_only() -> None:
    staff = User.objects.create_user("ops", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    for url in ("/admin/login/", "/admin/", "/api/admin/v1/docs/"):
        response = client.get(url, follow=True)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy, url
        page = response.content.decode()
        assert not re.search(r"<script>|<style>|\sstyle=", page), url
    script = client.get("/api/admin/v1/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


@pytest.mark.django_db
def test_staff_sessions_are_short_and_partner_sessions_keep_the_default(settings: Any) -> None:
    settings.STAFF_SESSION_SECONDS = 3600
    User.objects.create_user("ops", password="pw-ops-123", is_staff=True)
    User.objects.create_user("partner@example.com", "partner@example.com", "pw-partner-123")
    staff = Client()
    assert staff.post("/admin/login/", {"username": "ops", "password": "pw-ops-123"}).status_code == 302
    assert staff.session.get_expiry_age() == 3600
    partner = Client()
    response = partner.post("/portal/login/", {"username": "partner@example.com", "password": "pw-partner-123"})
    assert response.status_code == 302
    assert timedelta(seconds=partner.session.get_expiry_age()) == timedelta(seconds=settings.SESSION_COOKIE_AGE)


def test_the_images_code_is_not_writable_by_its_runtime_user() -> None:
    # No Docker daemon here (TOOLING.md): read the Dockerfile's instructions instead.
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    runtime = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    copies = [line for line in runtime if line.startswith("COPY ") and "--from=" not in line]
    assert copies and not any("--chown" in line for line in copies)
    user_at = next(i for i, line in enumerate(runtime) if line.startswith("USER "))
    assert any("chmod -R a-w" in line for line in runtime[:user_at])
    assert runtime[user_at].split()[1].split(":")[0] not in ("0", "root")


@pytest.mark.django_db
def test_with_ssl_redirect_the_probes_and_metrics_still_answer_over_plain_http(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # built after the change: the middleware reads the setting once
    assert client.get("/portal/").status_code == 301
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path, REMOTE_ADDR="127.0.0.1").status_code in (200, 503), path
