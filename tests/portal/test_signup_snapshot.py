"""Sign-ups never touch the data plane: a pending partner without a key is not in the gateway
snapshot and creating, verifying or renaming it does not bump the config version; approval does."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse

from portal import services as portal_services
from portal.models import PartnerMembership
from proxy import configbus, services
from proxy.models import Partner
from proxy.snapshot_builder import build_snapshot
from tests.conftest import subprocess_database_url
from tests.portal import factories
from tests.servers import free_port, gateway_process, wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def bumps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr("proxy.signals.bump_on_commit", lambda: seen.append("bump"))
    return seen


def slugs() -> set[str]:
    return {p["slug"] for p in build_snapshot()["partners"]}


def sign_up(client: Client, email: str = "hana@hearth.example") -> Any:
    return client.post(
        reverse("portal:signup"),
        {
            "organisation": "Hearth Voice",
            "contact_name": "Hana Ito",
            "email": email,
            "password1": factories.PASSWORD,
            "password2": factories.PASSWORD,
        },
    )


def test_a_sign_up_does_not_bump_the_version_nor_enter_the_snapshot(client: Client, bumps: list[str]) -> None:
    assert sign_up(client).status_code == 302
    assert Partner.objects.get().status == "pending"
    assert bumps == []
    assert "hearth-voice" not in slugs()


def test_verifying_and_renaming_a_pending_partner_do_not_bump_either(client: Client, bumps: list[str]) -> None:
    sign_up(client)
    member = PartnerMembership.objects.get()
    portal_services.email_verify(membership=member)
    portal_services.organisation_rename(by=member, name="Hearth Voice Ltd")
    assert bumps == []


def test_approval_bumps_and_puts_the_partner_in_the_snapshot(client: Client, bumps: list[str]) -> None:
    sign_up(client)
    partner = Partner.objects.get()
    assert portal_services.partner_approve(partner=partner)
    assert bumps == ["bump"]
    assert "hearth-voice" in slugs()
    services.partner_set_status(partner=partner, status="pending")  # back out: the gateway must hear it
    assert bumps == ["bump", "bump"]
    assert "hearth-voice" not in slugs()


def test_a_pending_partner_with_a_key_stays_known_so_its_key_says_pending(bumps: list[str]) -> None:
    partner = Partner.objects.create(name="Pat", slug="pat", status="pending")
    assert bumps == []
    key, _ = services.api_key_create(partner=partner, name="early")
    assert bumps  # the key itself bumps
    assert "pat" in slugs()
    snapshot = build_snapshot()
    assert [k["partner"] for k in snapshot["keys"]] == [partner.pk]
    # And a change to such a partner bumps, since the gateway knows it.
    bumps.clear()
    partner.name = "Pat & Co"
    partner.save()
    assert bumps == ["bump"]


def test_suspended_partners_stay_in_the_snapshot(bumps: list[str]) -> None:
    partner = Partner.objects.create(name="Sam", slug="sam", status="active")
    services.partner_set_status(partner=partner, status="suspended")
    assert len(bumps) == 2 and "sam" in slugs()


def scrape(base: str, name: str) -> float:
    text = httpx.get(base + "/metrics", timeout=5).text
    found = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def sign_up_over_http(base: str, email: str) -> int:
    with httpx.Client(base_url=base, timeout=10) as http:
        form = http.get("/portal/signup/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, form.text[:300]
        data = {
            "organisation": "Org " + email,
            "contact_name": "Someone",
            "email": email,
            "password1": factories.PASSWORD,
            "password2": factories.PASSWORD,
            "csrfmiddlewaretoken": token.group(1),
        }
        return http.post("/portal/signup/", data=data, headers={"Referer": base + "/portal/signup/"}).status_code


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sign_ups_through_a_running_gateway_never_make_it_reload(redis_client: Any) -> None:
    proc = gateway_process(free_port(), env={"DATABASE_URL": subprocess_database_url()}).start()
    base = f"http://127.0.0.1:{proc.port}"
    try:
        rebuilds = scrape(base, "apigw_config_rebuild_duration_seconds_count")
        version = redis_client.get(configbus.keys().config_version)
        for i in range(3):
            assert sign_up_over_http(base, f"spam{i}@example.com") == 302
        assert Partner.objects.filter(status="pending").count() == 3
        time.sleep(1.5)  # three config polls (GATEWAY_CONFIG_POLL_SECONDS=0.5 in the tests)
        assert redis_client.get(configbus.keys().config_version) == version
        assert scrape(base, "apigw_config_rebuild_duration_seconds_count") == rebuilds
        # The control: approving one is a change the gateway must hear of, within a second.
        portal_services.partner_approve(partner=Partner.objects.get(contact_email="spam0@example.com"))
        wait_until(lambda: scrape(base, "apigw_config_rebuild_duration_seconds_count") > rebuilds, timeout=2.0)
    finally:
        proc.stop()
