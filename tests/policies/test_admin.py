"""Resilience and traffic-policy settings in the control plane: validation by the data plane's
own compilers, the snapshot they produce, and the Django admin forms."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from proxy.gateway.breaker import BreakerSettings
from proxy.gateway.snapshot import Snapshot
from proxy.models import Partner, Route, Upstream
from proxy.snapshot_builder import build_snapshot
from tests import factories

pytestmark = pytest.mark.django_db

FULL_POLICY: dict[str, Any] = {
    "upstream_rules": [{"header": "X-API-Version", "value": "2", "upstream": "v2"}],
    "connect_timeout": 0.5,
    "read_timeout": 5,
    "total_timeout": 30,
    "retries": 1,
    "retry_statuses": [503],
    "max_body_bytes": 4096,
    "cache_ttl": 30,
    "cache_headers": ["Accept-Language"],
    "cors_origins": ["https://app.example.com"],
    "cors_credentials": True,
    "ip_allow": ["203.0.113.0/24"],
    "ip_deny": ["203.0.113.66/32"],
    "request_transform": {"set": {"X-Env": "prod"}},
    "response_transform": {"remove": ["Server"]},
}


@pytest.fixture
def upstreams() -> tuple[Upstream, Upstream]:
    return factories.upstream(name="v1"), factories.upstream(name="v2")


@pytest.mark.django_db(transaction=True)  # build_snapshot closes the connection
def test_a_route_with_every_policy_validates_and_compiles(upstreams: tuple[Upstream, Upstream]) -> None:
    v1, _ = upstreams
    route = Route(name="api", upstream=v1, path="/api", **FULL_POLICY)
    route.full_clean()
    route.save()
    factories.target(upstream=v1, url="http://127.0.0.1:9001")
    snapshot = Snapshot.compile(build_snapshot(), 1)
    policy = snapshot.traffic["api"]
    assert policy.cache is not None and policy.cache.headers == ("accept-language", "x-api-version")
    assert policy.cors is not None and policy.cors.credentials
    assert policy.ip_rules is not None and not policy.ip_rules.permits("203.0.113.66")
    assert (policy.connect_timeout, policy.read_timeout, policy.total_timeout) == (0.5, 5.0, 30.0)
    assert policy.retry.retries == 1 and policy.retry.statuses == {503}
    assert policy.max_body_bytes == 4096
    assert policy.upstream_rules[0].upstream == "v2"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"ip_allow": ["10.0.0.0/40"]}, "ip_allow", "not an IP network"),
        ({"ip_deny": "10.0.0.0/8"}, "ip_deny", "JSON list of CIDRs"),
        ({"cors_origins": ["app.example.com"]}, "cors_origins", "must look like"),
        ({"cors_methods": "GET"}, "cors_methods", "JSON list of strings"),
        ({"request_transform": {"set": {"Host": "x"}}}, "request_transform", "set by the gateway alone"),
        ({"response_transform": ["remove"]}, "response_transform", "JSON object"),
        ({"upstream_rules": [{"header": "X-V", "upstream": "nowhere"}]}, "upstream_rules", "Unknown upstreams"),
        ({"upstream_rules": [{"upstream": "v2"}]}, "upstream_rules", "needs a header or partners"),
        ({"retry_statuses": [99]}, "retry_statuses", "HTTP status codes"),
        ({"cache_ttl": 60, "cache_headers": "Accept"}, "cache_headers", "JSON list of strings"),
    ],
)
def test_a_broken_policy_is_refused_on_its_field(
    upstreams: tuple[Upstream, Upstream], fields: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Route(name="r", upstream=upstreams[0], path="/r", **fields).full_clean()
    assert field in caught.value.message_dict, caught.value.message_dict
    assert message in " ".join(caught.value.message_dict[field])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"algorithm": "consistent_hash", "hash_on": "header", "hash_header": ""}, "hash_header"),
        ({"ejection_seconds": 60, "max_ejection_seconds": 30}, "max_ejection_seconds"),
        ({"health_check_path": "healthz"}, "health_check_path"),
        ({"failure_statuses": ["503"]}, "failure_statuses"),
    ],
)
def test_broken_upstream_settings_are_refused(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Upstream(name="u", **fields).full_clean()
    assert field in caught.value.message_dict


@pytest.mark.django_db(transaction=True)  # build_snapshot closes the connection
def test_upstream_settings_reach_the_compiled_upstream() -> None:
    factories.upstream(
        name="u",
        targets=[{"url": "http://127.0.0.1:9001", "weight": 5}],
        algorithm="consistent_hash",
        hash_on="key",
        failure_threshold=3,
        failure_window=5,
        ejection_seconds=2,
        max_ejection_seconds=20,
        failure_statuses=[503],
        health_check_path="/healthz",
        health_check_interval=1,
        retry_budget_percent=10,
        retry_budget_per_second=1,
    )
    compiled = Snapshot.compile(build_snapshot(), 1).upstreams["u"]
    assert (compiled.algorithm, compiled.hash_on) == ("consistent_hash", "key")
    assert compiled.breaker == BreakerSettings(3, 5.0, 2.0, 20.0, frozenset({503}))
    assert compiled.health_check is not None and compiled.health_check.interval == 1.0
    assert (compiled.retry_budget.ratio, compiled.retry_budget.per_second) == (0.1, 1)


@pytest.mark.django_db(transaction=True)  # build_snapshot closes the connection
def test_partner_ip_rules_reach_the_snapshot() -> None:
    partner = Partner(name="Acme", slug="acme", status="active", ip_allow=["10.20.0.0/16"])
    partner.full_clean()
    partner.save()
    snapshot = Snapshot.compile(build_snapshot(), 1)
    assert not snapshot.partner_ips[partner.pk].permits("192.0.2.1")
    with pytest.raises(ValidationError):
        Partner(name="Bad", slug="bad", ip_deny=["everyone"]).full_clean()


def test_the_admin_shows_the_new_settings(admin_client: Client, upstreams: tuple[Upstream, Upstream]) -> None:
    route = factories.route(upstream=upstreams[0], name="api", path="/api", **FULL_POLICY)
    page = admin_client.get(f"/admin/proxy/route/{route.pk}/change/").content.decode()
    for heading in ("Timeouts, retries, body limit", "Response cache", "CORS", "IP rules", "Header transforms"):
        assert heading in page
    page = admin_client.get(f"/admin/proxy/upstream/{upstreams[0].pk}/change/").content.decode()
    for heading in ("Load balancing", "Passive health checks", "Active health checks", "Retry budget"):
        assert heading in page


def test_the_admin_saves_an_upstream_with_a_canary(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/proxy/upstream/add/",
        {
            "name": "appliances",
            "description": "",
            "algorithm": "round_robin",
            "hash_on": "partner",
            "hash_header": "",
            "connect_timeout": "",
            "read_timeout": "",
            "failure_threshold": "5",
            "failure_window": "10",
            "ejection_seconds": "10",
            "max_ejection_seconds": "300",
            "failure_statuses": "[502, 503, 504]",
            "health_check_path": "/healthz",
            "health_check_interval": "5",
            "health_check_timeout": "2",
            "health_check_statuses": "[200]",
            "healthy_threshold": "2",
            "unhealthy_threshold": "2",
            "retry_budget_percent": "20",
            "retry_budget_per_second": "5",
            "targets-TOTAL_FORMS": "2",
            "targets-INITIAL_FORMS": "0",
            "targets-MIN_NUM_FORMS": "0",
            "targets-MAX_NUM_FORMS": "1000",
            "targets-0-url": "http://127.0.0.1:9001",
            "targets-0-weight": "95",
            "targets-0-enabled": "on",
            "targets-1-url": "http://127.0.0.1:9002",
            "targets-1-weight": "5",
            "targets-1-enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    upstream = Upstream.objects.get(name="appliances")
    assert upstream.health_check_path == "/healthz"
    assert sorted(t.weight for t in upstream.targets.all()) == [5, 95]
