"""Behind a TLS-terminating load balancer (issue 15, item 2; docs/operations.md): the portal and
admin accept POSTs only when TRUST_X_FORWARDED_PROTO tells Django to believe the balancer's
`X-Forwarded-Proto: https`. A real production-mode process; the test plays the balancer."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.apigw.test_probes import PRODUCTION
from tests.conftest import subprocess_database_url
from tests.servers import free_port, gateway_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

BALANCER = {"Host": "api.example.com", "X-Forwarded-Proto": "https"}


def admin_login_post(base: str) -> int:
    """GET the login form and POST it back as a browser behind the balancer would; the GET's
    status when it is not the form."""
    form = httpx.get(base + "/admin/login/", headers=BALANCER, timeout=10)
    if form.status_code != 200:
        return form.status_code
    # The cookie is Secure: an http client keeps it to itself, the browser (on https) sends it.
    cookie = re.search(r"csrftoken=([^;]+)", form.headers["set-cookie"])
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert cookie and token
    response = httpx.post(
        base + "/admin/login/",
        headers={**BALANCER, "Origin": "https://api.example.com", "Cookie": f"csrftoken={cookie.group(1)}"},
        data={"csrfmiddlewaretoken": token.group(1), "username": "nobody", "password": "wrong"},
        timeout=10,
    )
    return response.status_code


# Not trusted: Django sees plain http and redirects to https, which the balancer sends back as
# http — a loop (SECURE_SSL_REDIRECT); with the redirect off, the POST would fail CSRF (403).
@pytest.mark.parametrize(("trust", "expected"), [("true", 200), ("false", 301)])
def test_posts_pass_csrf_behind_tls_only_when_the_forwarded_proto_is_trusted(trust: str, expected: int) -> None:
    port = free_port()
    env = {"DATABASE_URL": subprocess_database_url(), **PRODUCTION, "TRUST_X_FORWARDED_PROTO": trust}
    proc = gateway_process(port, env=env).start()
    try:
        # 200: the form again with "wrong password"; 301: redirected to https for ever.
        assert admin_login_post(f"http://127.0.0.1:{port}") == expected
    finally:
        proc.stop()
