"""Demo configuration for `make run`: the demo appliance upstream, its routes, an admin login."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from proxy.models import Route, Target, Upstream

DEMO_UPSTREAM_URL = "http://127.0.0.1:8001"
ADMIN_USERNAME = "admin"


def _admin_password_file() -> Path:
    return Path(settings.BASE_DIR) / "var" / "admin-password"


def ensure_admin() -> str:
    """Create the admin login once. The password comes from ADMIN_PASSWORD or is generated and
    kept in var/admin-password (mode 0600, git-ignored) so later runs can print it again."""
    user_model = get_user_model()
    password = os.environ.get("ADMIN_PASSWORD", "")
    stored = _admin_password_file()
    user = user_model.objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        password = password or secrets.token_urlsafe(12)
        user_model.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", password)
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
    elif stored.exists():
        return stored.read_text().strip()
    else:
        return "(set when the admin user was created; set ADMIN_PASSWORD to change it)"
    stored.parent.mkdir(exist_ok=True)
    stored.write_text(password + "\n")
    stored.chmod(0o600)
    return password


@transaction.atomic
def load_demo(upstream_url: str = DEMO_UPSTREAM_URL) -> dict[str, Any]:
    upstream, _ = Upstream.objects.update_or_create(
        name="demo-appliances", defaults={"description": "The demo appliance API (python -m demo)"}
    )
    Target.objects.update_or_create(upstream=upstream, url=upstream_url, defaults={"weight": 1, "enabled": True})
    Route.objects.update_or_create(
        name="appliances-v1",
        defaults={"upstream": upstream, "path_type": "prefix", "path": "/api/v1", "protocols": ["http"]},
    )
    return {"upstream": upstream.name}


class Command(BaseCommand):
    help = "Create (or refresh) the demo upstream, routes and admin login."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--upstream-url", default=DEMO_UPSTREAM_URL)

    def handle(self, *args: Any, **options: Any) -> None:
        load_demo(options["upstream_url"])
        password = ensure_admin()
        self.stdout.write(f"Admin login: {ADMIN_USERNAME} / {password}")
