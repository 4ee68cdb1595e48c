"""IP allow/deny rules per route and per partner, and who the client is behind trusted proxies
(proxy/gateway/iprules.py), through a real gateway. Every test client connects from 127.0.0.1.

Personas: acme may call only from its office network 10.20.0.0/16; globex from anywhere.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from proxy.gateway.iprules import ClientAddress, IpRules
from tests.policies.conftest import PEPPER, keyed, route, upstream

pytestmark = pytest.mark.timeout(60)

OFFICE = "203.0.113.0/24"


def snapshot(backend: Any) -> tuple[dict[str, Any], dict[str, str]]:
    data: dict[str, Any] = {
        "upstreams": [upstream("origin", backend.url)],
        "routes": [
            route("office", "/office", "origin", ip_allow=[OFFICE]),
            route("blocked", "/blocked", "origin", ip_deny=["127.0.0.0/8"]),
            route("partners", "/partners", "origin", auth="key"),
        ],
    }
    secrets = keyed(data, {"acme": {"ip_allow": ["10.20.0.0/16"]}, "globex": {}})
    return data, secrets


def denied(response: httpx.Response) -> bool:
    return response.status_code == 403 and response.json()["error"]["code"] == "ip_denied"


def test_a_spoofed_x_forwarded_for_from_an_untrusted_client_changes_nothing(static_gateway: Any, backends: Any) -> None:
    data, _ = snapshot(backends("origin"))
    server = static_gateway(data, api_key_pepper=PEPPER, trusted_proxies=("10.0.0.0/8",))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert denied(client.get("/office/x"))
        assert denied(client.get("/office/x", headers={"X-Forwarded-For": "203.0.113.5"}))
        assert denied(client.get("/blocked/x", headers={"X-Forwarded-For": "198.51.100.1"}))
        seen = client.get("/partners/x", headers={"X-Forwarded-For": "203.0.113.5"})
        assert seen.status_code == 401  # got past the IP phase (no rules on the route) to auth


def test_behind_a_trusted_proxy_the_client_is_the_first_untrusted_hop(static_gateway: Any, backends: Any) -> None:
    data, _ = snapshot(backends("origin"))
    server = static_gateway(data, api_key_pepper=PEPPER, trusted_proxies=("127.0.0.1/32", "10.0.0.0/8"))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        allowed = client.get("/office/x", headers={"X-Forwarded-For": "203.0.113.5"})
        assert allowed.status_code == 200
        headers = allowed.json()["headers"]
        assert headers["x-real-ip"] == "203.0.113.5"
        assert headers["x-forwarded-for"] == "203.0.113.5, 127.0.0.1"
        # Through two proxies (10.1.1.1 is ours): still the office client.
        assert client.get("/office/x", headers={"X-Forwarded-For": "203.0.113.5, 10.1.1.1"}).status_code == 200
        # Whatever the client wrote left of the last untrusted hop does not count.
        assert denied(client.get("/office/x", headers={"X-Forwarded-For": "203.0.113.5, 198.51.100.7"}))
        assert client.get("/blocked/x", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 200
        assert denied(client.get("/blocked/x"))  # the proxy itself calling


def test_a_partner_may_call_only_from_its_networks(static_gateway: Any, backends: Any) -> None:
    data, secrets = snapshot(backends("origin"))
    server = static_gateway(data, api_key_pepper=PEPPER, trusted_proxies=("127.0.0.1/32",))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        acme = {"X-API-Key": secrets["acme"]}
        assert denied(client.get("/partners/x", headers=acme))
        assert denied(client.get("/partners/x", headers={**acme, "X-Forwarded-For": "203.0.113.5"}))
        assert client.get("/partners/x", headers={**acme, "X-Forwarded-For": "10.20.3.4"}).status_code == 200
        assert client.get("/partners/x", headers={"X-API-Key": secrets["globex"]}).status_code == 200


def test_deny_wins_over_allow_and_ipv4_mapped_addresses_count_as_ipv4() -> None:
    rules = IpRules(allow=["10.0.0.0/8"], deny=["10.6.6.0/24"])
    assert rules.permits("10.1.2.3")
    assert not rules.permits("10.6.6.6")
    assert not rules.permits("192.0.2.1")
    assert rules.permits("::ffff:10.1.2.3")
    assert not rules.permits("2001:db8::1")
    assert not rules.permits("not-an-address")
    assert IpRules(deny=["2001:db8::/32"]).permits("not-an-address")
    with pytest.raises(ValueError):
        IpRules(allow=["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # untrusted peer: header ignored
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.1", ["192.0.2.1, 198.51.100.1, 10.0.0.2"], "198.51.100.1"),
        ("10.0.0.1", ["192.0.2.1", "198.51.100.1"], "198.51.100.1"),  # two header lines
        ("10.0.0.1", ["garbage, 198.51.100.1"], "198.51.100.1"),
        ("10.0.0.1", ["198.51.100.1, garbage"], "10.0.0.1"),
        ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # all ours: the leftmost
    ],
)
def test_client_address_resolution(peer: str, forwarded: list[str] | None, client: str) -> None:
    assert ClientAddress(["10.0.0.0/8"]).resolve(peer, forwarded) == client
