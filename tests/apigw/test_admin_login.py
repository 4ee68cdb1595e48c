"""Django admin's login is throttled like the portal's, also across gateway processes.

The demo admin is called ``admin``; mallory tries 30 passwords. In process, then for real: two
uvicorn processes behind one "load balancer" (127.0.0.1, a trusted proxy), sharing Redis."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from tests.conftest import subprocess_database_url
from tests.servers import Process, free_port, gateway_process

LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _forget_failures() -> Iterator[None]:
    yield
    cache.delete_pattern("throttle:*")  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_the_admin_login_locks_a_guesser_out_even_with_the_right_password(settings: Any) -> None:
    settings.LOGIN_ATTEMPTS = 5
    User.objects.create_superuser("admin", "admin@example.com", "the-right-one")
    client = Client()
    for _ in range(5):
        assert client.post(LOGIN, {"username": "admin", "password": "wrong"}).status_code == 200
    response = client.post(LOGIN, {"username": "admin", "password": "the-right-one"})
    assert response.status_code == 429 and "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another client is not locked out.
    other = Client(REMOTE_ADDR="198.51.100.7").post(LOGIN, {"username": "admin", "password": "the-right-one"})
    assert other.status_code == 302


def admin_login(base: str, password: str, client_ip: str) -> int:
    with httpx.Client(base_url=base, timeout=10, headers={"X-Forwarded-For": client_ip}) as http:
        page = http.get(LOGIN)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text[:500]
        response = http.post(
            LOGIN,
            data={"username": "admin", "password": password, "csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": base + LOGIN},
        )
        return response.status_code


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_failures_count_across_instances_per_forwarded_client() -> None:
    User.objects.create_superuser("admin", "admin@example.com", "the-right-one")
    env = {
        "DATABASE_URL": subprocess_database_url(),
        "GATEWAY_TRUSTED_PROXIES": "127.0.0.0/8",
        "LOGIN_ATTEMPTS": "4",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    procs: list[Process] = []
    try:
        for _ in range(2):
            proc = gateway_process(free_port(), env=env)
            procs.append(proc.start())
        bases = [f"http://127.0.0.1:{p.port}" for p in procs]
        # Four failures spread over both instances lock mallory's address on both…
        for i in range(4):
            assert admin_login(bases[i % 2], "wrong", "203.0.113.66") == 200
        for base in bases:
            assert admin_login(base, "the-right-one", "203.0.113.66") == 429
        # …while the real admin, behind the same balancer, logs in.
        assert admin_login(bases[0], "the-right-one", "198.51.100.7") == 302
    finally:
        for proc in procs:
            proc.stop()
