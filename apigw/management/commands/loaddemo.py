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

from demo import openapi as demo_openapi
from proxy import services
from proxy.models import ApiProduct, Plan, Route, Target, Upstream

DEMO_UPSTREAM_URL = "http://127.0.0.1:8001"
ADMIN_USERNAME = "admin"


def _admin_password_file() -> Path:
    return Path(settings.VAR_DIR) / "admin-password"


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
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(password + "\n")
    stored.chmod(0o600)
    return password


def _var(name: str) -> Path:
    return Path(settings.VAR_DIR) / name


def ensure_demo_key() -> str:
    """The demo partner's key. Only its hash is in the database, so the secret is kept in
    var/demo-api-key (0600, git-ignored) and reused while it is still valid."""
    stored = _var("demo-api-key")
    if stored.exists():
        secret = stored.read_text().strip()
        key = services.api_key_find(secret)
        if key is not None and key.status == "active" and key.partner.status == "active":
            return secret
    partner = services.partner_get_or_create(slug="demo-partner", name="Demo Partner")
    services.partner_set_status(partner=partner, status="active")
    _key, secret = services.api_key_create(partner=partner, name="demo")
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(secret + "\n")
    stored.chmod(0o600)
    return secret


@transaction.atomic
def load_demo(upstream_url: str = DEMO_UPSTREAM_URL) -> dict[str, Any]:
    upstream, _ = Upstream.objects.update_or_create(
        name="demo-appliances", defaults={"description": "The demo appliance API (python -m demo)"}
    )
    Target.objects.update_or_create(upstream=upstream, url=upstream_url, defaults={"weight": 1, "enabled": True})
    # The demo upstream is exactly the one make run started: a target left from a run on another
    # DEMO_PORT would get every other request and refuse it.
    for stale in Target.objects.filter(upstream=upstream).exclude(url=upstream_url):
        stale.delete()  # one by one, so the audit log and the config version see each
    product, _ = ApiProduct.objects.update_or_create(
        slug="appliance-api-v1",
        defaults={
            "name": "Appliance API v1",
            "description": "List appliances, start programs, receive events.",
            "openapi": demo_openapi.document(),  # the portal shows it in Swagger UI ("Try it out")
        },
    )
    plan, _ = Plan.objects.update_or_create(
        slug="demo", defaults={"name": "Demo", "scope": "key", "per_minute": 60, "quota_day": 10_000}
    )
    Route.objects.update_or_create(
        name="appliances-v1",
        # Browsers cannot set headers on a WebSocket: the demo also takes ?api_key=.
        defaults={
            "upstream": upstream,
            "path_type": "prefix",
            "path": "/api/v1",
            "protocols": ["http", "websocket"],
            "product": product,
            "auth": "key",
            "allow_query_key": True,
        },
    )
    partner = services.partner_get_or_create(slug="demo-partner", name="Demo Partner")
    services.subscription_set(partner=partner, product=product, plan=plan)
    return {"upstream": upstream.name, "key": ensure_demo_key()}


class Command(BaseCommand):
    help = "Create (or refresh) the demo upstream, routes and admin login."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--upstream-url", default=DEMO_UPSTREAM_URL)

    def handle(self, *args: Any, **options: Any) -> None:
        info = load_demo(options["upstream_url"])
        password = ensure_admin()
        self.stdout.write(f"Admin login: {ADMIN_USERNAME} / {password}")
        self.stdout.write(f"Demo API key: {info['key']}")
