"""The portal against a real gateway process: a key made in the portal opens the API; revoking
it in the portal, or suspending the partner, shuts it within a second; quota shown = quota counted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse

from portal import reports
from portal.models import PartnerMembership
from proxy import services
from proxy.models import ApiProduct, Plan
from tests import factories as config
from tests.conftest import subprocess_database_url
from tests.portal import factories
from tests.servers import free_port, gateway_process, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def api(demo_upstream: str) -> tuple[ApiProduct, Plan]:
    upstream = config.upstream(name="demo", targets=[demo_upstream])
    product = factories.make_product("appliances")
    config.route(upstream=upstream, name="appliances", path="/api/v1", product=product, auth="key")
    return product, factories.make_plan("starter", quota_day=50, quota_month=1000)


@pytest.fixture
def gateway() -> Iterator[str]:
    port = free_port()
    proc = gateway_process(port, env={"DATABASE_URL": subprocess_database_url()}).start()
    yield f"http://127.0.0.1:{port}"
    proc.stop()


def call(base: str, secret: str) -> int:
    try:
        return httpx.get(
            f"{base}/api/v1/appliances", headers={"Authorization": f"Bearer {secret}"}, timeout=2
        ).status_code
    except httpx.HTTPError:
        return 0


def becomes(base: str, secret: str, status: int, timeout: float) -> float:
    """Seconds until the gateway answers ``status`` for the key; fails naming the last answer."""
    seen: list[int] = []

    def check() -> bool:
        seen.append(call(base, secret))
        return seen[-1] == status

    try:
        return wait_until(check, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"expected {status} within {timeout} s; the gateway answered {seen[-5:]}") from None


def test_a_portal_key_works_then_revocation_shuts_it_within_a_second(
    api: tuple[ApiProduct, Plan], gateway: str, alice: PartnerMembership
) -> None:
    product, plan = api
    client = Client()
    client.force_login(alice.user)
    client.post(reverse("portal:subscribe", args=[product.slug]), {"plan": plan.pk})
    page = client.post(reverse("portal:key-create"), {"name": "skill", "products": [product.pk]}).content.decode()
    found = re.search(r'id="secret" class="secret" type="text" value="([^"]+)"', page)
    assert found
    secret = found.group(1)
    becomes(gateway, secret, 200, timeout=5)
    for _ in range(4):
        assert call(gateway, secret) == 200
    key = services.api_key_find(secret)
    assert key is not None

    # The quota the portal shows is the gateway's own counter.
    [line] = reports.quota_lines(partner=alice.partner, key=key)
    assert line.live and line.day is not None and line.day.used >= 5 and line.day.remaining == 50 - line.day.used
    assert line.month is not None and line.month.used == line.day.used

    client.post(reverse("portal:key-revoke", args=[key.pk]))
    assert becomes(gateway, secret, 401, timeout=1.0) < 1.0


def test_a_suspended_partner_logs_in_but_its_keys_stop(
    api: tuple[ApiProduct, Plan], gateway: str, alice: PartnerMembership
) -> None:
    product, plan = api
    factories.subscribe(alice.partner, product, plan)
    _key, secret = config.api_key(partner=alice.partner, name="k")
    becomes(gateway, secret, 200, timeout=5)

    services.partner_set_status(partner=alice.partner, status="suspended")
    becomes(gateway, secret, 403, timeout=1.0)
    response = httpx.get(f"{gateway}/api/v1/appliances", headers={"Authorization": f"Bearer {secret}"})
    assert response.json()["error"]["code"] == "partner_suspended"

    client = Client()
    assert (
        client.post(reverse("portal:login"), {"username": alice.user.email, "password": factories.PASSWORD}).status_code
        == 302
    )
    assert b"is suspended" in client.get(reverse("portal:keys")).content


def test_the_portal_is_served_by_the_platform_process(gateway: str, db: Any) -> None:
    """/portal/ and its static assets are control-plane paths of the same process as the gateway."""
    page = httpx.get(f"{gateway}/portal/", timeout=5)
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers
    css = httpx.get(f"{gateway}/static/portal/portal.css", timeout=5)
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    bundle = httpx.get(f"{gateway}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js", timeout=5)
    assert bundle.status_code == 200
