"""Sign-ups never touch the data plane: a pending partner without a key is not in the gateway
snapshot and creating, verifying or renaming it does not bump the config version; approval does."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from portal import services as portal_services
from portal.models import PartnerMembership
from proxy import services
from proxy.models import Partner
from proxy.snapshot import build_snapshot
from tests.portal import factories

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
