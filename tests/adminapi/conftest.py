from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.adminapi.factories import client_for, staff


@pytest.fixture
def alice(db: None) -> User:
    return staff("alice")


@pytest.fixture
def rita(db: None) -> User:
    return staff("rita", view_only=True)


@pytest.fixture
def pete(db: None) -> User:
    return staff("pete", is_staff=False)


@pytest.fixture
def api(alice: User) -> APIClient:
    """alice's token client."""
    return client_for(alice)


@pytest.fixture
def readonly_api(rita: User) -> APIClient:
    return client_for(rita)
