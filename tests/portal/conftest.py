"""Personas: alice owns partner A ("acme"), dave is a developer there; bob owns partner B
("globex"). Alice and dave must never see anything of B's, and bob nothing of A's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from portal.models import PartnerMembership
from proxy.models import ApiProduct, Plan
from tests.portal import factories


@pytest.fixture(autouse=True)
def _forget_login_failures() -> Iterator[None]:
    yield
    cache.delete_pattern("throttle:*")  # type: ignore[attr-defined]


@pytest.fixture
def product(db: Any) -> ApiProduct:
    return factories.make_product("appliances")


@pytest.fixture
def manual_product(db: Any) -> ApiProduct:
    return factories.make_product("energy", name="Energy data", approval="manual")


@pytest.fixture
def plan(db: Any) -> Plan:
    return factories.make_plan("starter")


@pytest.fixture
def alice(db: Any) -> PartnerMembership:
    return factories.make_member("alice@acme.example", "acme")


@pytest.fixture
def dave(alice: PartnerMembership) -> PartnerMembership:
    return factories.make_member("dave@acme.example", alice.partner, role="developer")


@pytest.fixture
def bob(db: Any) -> PartnerMembership:
    return factories.make_member("bob@globex.example", "globex")


def client_for(member: PartnerMembership, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(member.user)
    return client


@pytest.fixture
def alice_client(alice: PartnerMembership) -> Client:
    return client_for(alice)


@pytest.fixture
def dave_client(dave: PartnerMembership) -> Client:
    return client_for(dave)


@pytest.fixture
def staff(db: Any) -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_superuser("staff", "staff@platform.example", factories.PASSWORD)
