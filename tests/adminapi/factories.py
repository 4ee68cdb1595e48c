"""Data and personas for the admin API, audit and declarative tests.

alice operates the platform (every permission on the configuration); rita is a read-only
operator (a group with the view permissions only); pete is a logged-in user who is not staff.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission, User
from rest_framework.test import APIClient

from adminapi import services as token_services
from proxy.models import ApiProduct, Partner, Plan, Route, Subscription, Upstream
from tests import factories

CONFIG_APPS = ("proxy", "audit", "adminapi")


def group(name: str, *, view_only: bool) -> Group:
    found, _ = Group.objects.get_or_create(name=name)
    perms = Permission.objects.filter(content_type__app_label__in=CONFIG_APPS)
    if view_only:
        perms = perms.filter(codename__startswith="view_")
    found.permissions.set(perms)
    return found


def staff(username: str, *, view_only: bool = False, is_staff: bool = True) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", "pw-" + username, is_staff=is_staff)
    user.groups.add(group("readonly-operators" if view_only else "operators", view_only=view_only))
    return user


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        _, secret = token_services.admin_token_create(user=user, name="tests")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def sample_config(target_url: str = "http://127.0.0.1:9") -> dict[str, Any]:
    """An upstream with a target, a product, a plan, a key route and a public route, and an
    active partner subscribed to the product."""
    upstream = factories.upstream(
        name="appliances", description="Appliance service", targets=[{"url": target_url, "weight": 3}]
    )
    product = factories.product(slug="appliance-api", name="Appliance API")
    plan = factories.plan(slug="gold", per_minute=60, quota_day=1000)
    route = factories.route(
        upstream=upstream, name="appliances-v1", path="/api/v1", product=product, methods=["GET", "POST"]
    )
    public = factories.route(
        upstream=upstream, name="status", path="/status", path_type="exact", auth="public", limit_per_second=5
    )
    partner = factories.partner(slug="acme")
    factories.subscription(partner=partner, product=product, plan=plan)
    return {
        "upstream": upstream,
        "product": product,
        "plan": plan,
        "route": route,
        "public": public,
        "partner": partner,
    }


def rich_config() -> None:
    """Every kind of object with every kind of field set away from its default."""
    sample = sample_config()
    legacy = factories.upstream(
        name="legacy",
        connect_timeout=1.5,
        read_timeout=30.0,
        targets=[
            {"url": "http://127.0.0.1:8101", "weight": 5},
            {"url": "http://127.0.0.1:8102", "weight": 0, "enabled": False},
        ],
    )
    factories.upstream(name="spare")
    events = factories.product(
        slug="events",
        name="Appliance events",
        description="Server-sent events.\nSecond line.",
        published=False,
        approval="manual",
        openapi={
            "openapi": "3.0.3",
            "info": {"title": "Events", "version": "1"},
            "paths": {"/events": {}},
            "x-numbers": [1, 2.5, True, None],
            "x-date-like": "2024-01-01",
            "x-yes": "yes",
        },
    )
    free = factories.plan(
        slug="free",
        description="Try it",
        scope="partner",
        per_second=1,
        per_hour=100,
        quota_month=5000,
        public=False,
    )
    factories.route(
        upstream=legacy,
        name="item-v2",
        path_type="regex",
        path=r"^/items/(?P<id>[0-9]+)$",
        rewrite="/v2/items/{id}",
        hosts=["api.example.com", "*.example.org"],
        methods=["GET"],
        priority=10,
        enabled=False,
        headers=[
            {"name": "x-api-version", "match": "exact", "value": "2"},
            {"name": "x-debug", "match": "absent", "value": ""},
        ],
        query=[{"name": "format", "match": "regex", "value": "^(json|xml)$"}],
        product=events,
        auth="key_or_jwt",
        allow_query_key=True,
        limit_per_second=3,
        limit_per_minute=100,
        limit_per_hour=1000,
        strip_prefix=False,
        preserve_host=True,
    )
    factories.route(
        upstream=legacy,
        name="events",
        path="/events",
        strip_prefix=True,
        protocols=["http", "websocket"],
        auth="jwt",
        ws_max_message_bytes=4096,
        ws_messages_per_second=10,
        ws_key_messages_per_second=20,
        ws_rate_action="drop",
        ws_max_connections_per_key=2,
        ws_max_connections_per_partner=5,
    )
    beta = factories.partner(slug="beta", name="Beta Automation", status="suspended", contact_email="ops@beta.example")
    factories.subscription(partner=beta, product=events, plan=free, status="pending")
    factories.subscription(partner=beta, product=sample["product"], plan=sample["plan"], status="rejected")
    factories.partner(slug="gamma", status="pending")


def empty_configuration() -> None:
    from proxy.models import ApiKey

    Subscription.objects.all().delete()
    ApiKey.objects.all().delete()
    Partner.objects.all().delete()
    Route.objects.all().delete()
    Upstream.objects.all().delete()
    Plan.objects.all().delete()
    ApiProduct.objects.all().delete()
