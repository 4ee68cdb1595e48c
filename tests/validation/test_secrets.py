"""Secrets: shown once and never in a cookie, never in target URLs, written 0600; the key CLI
does not invent partners from typos."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from apigw.secretfile import write_private
from proxy.models import ApiKey, Partner, Plan, Target, Upstream
from tests.adminapi.factories import client_for, staff

pytestmark = pytest.mark.django_db


def test_a_new_key_in_django_admin_is_shown_on_the_page_and_not_in_the_messages_cookie() -> None:
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    partner = Partner.objects.create(name="Acme", slug="acme", status="active")
    client = Client()
    client.force_login(root)
    response = client.post("/admin/proxy/apikey/add/", {"partner": partner.pk, "name": "prod"})
    assert response.status_code == 200
    secret = response.context["secret"]
    assert ApiKey.objects.get(name="prod").prefix in secret
    assert secret in response.content.decode() and "no-store" in response["Cache-Control"]
    assert "messages" not in response.cookies
    assert all(secret not in morsel.value for morsel in client.cookies.values())


@pytest.mark.parametrize("url", ["http://user:pw@10.0.0.5:8080", "https://token@api.internal", "http://:pw@h"])
def test_target_urls_with_credentials_are_refused(url: str) -> None:
    upstream = Upstream.objects.create(name="u")
    with pytest.raises(ValidationError, match="credentials"):
        Target(upstream=upstream, url=url).full_clean()
    api = client_for(staff("alice"))
    response = api.post("/api/admin/v1/targets/", {"upstream": "u", "url": url}, format="json")
    assert response.status_code == 400 and "credentials" in str(response.json()["url"])
    assert not Target.objects.exists()


def test_secret_files_are_created_private_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "var" / "admin-password"
    write_private(path, "s3cret\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "s3cret\n"
    path.chmod(0o644)  # an older, too open file is narrowed
    write_private(path, "new\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "new\n"


def test_apikey_create_refuses_an_unknown_partner_unless_asked() -> None:
    Plan.objects.create(name="Demo", slug="demo")
    Partner.objects.create(name="Acme", slug="acme", status="active")
    with pytest.raises(CommandError, match="Unknown partner 'acmee'"):
        call_command("apikey", "create", "--partner", "acmee", "--plan", "demo", "--name", "x")
    assert not Partner.objects.filter(slug="acmee").exists()
    call_command("apikey", "create", "--partner", "acme", "--plan", "demo", "--name", "x")
    call_command("apikey", "create", "--partner", "newco", "--plan", "demo", "--name", "x", "--create-partner")
    assert Partner.objects.get(slug="newco").status == "active"
