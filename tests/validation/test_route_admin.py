"""Route and upstream validation, through the models and through the Django admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from proxy.models import Route, Target, Upstream
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def upstream() -> Upstream:
    return factories.upstream(name="demo")


def make_route(upstream: Upstream, **fields: Any) -> Route:
    return Route(name=fields.pop("name", "r1"), upstream=upstream, **fields)


def test_a_valid_route_passes(upstream: Upstream) -> None:
    route = make_route(
        upstream,
        path_type="regex",
        path=r"^/items/(?P<id>\d+)$",
        rewrite="/v2/items/{id}",
        methods=["get"],
        hosts=["API.example.com", "*.example.com"],
        headers=[{"name": "X-API-Version", "match": "exact", "value": "2"}],
    )
    route.full_clean()
    assert route.methods == ["GET"]
    assert route.hosts == ["api.example.com", "*.example.com"]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"path_type": "regex", "path": "^/items/(?P<id>[0-9+$"}, "path", "does not compile"),
        ({"path": "items"}, "path", "must start with '/'"),
        ({"hosts": ["api.*.com"]}, "hosts", "wildcard hosts"),
        ({"rewrite": "/v2/{id}"}, "rewrite", "does not capture"),
        ({"headers": [{"name": "X-A", "match": "regex", "value": "("}]}, "headers", "does not compile"),
        ({"headers": [{"name": "X-A", "match": "fuzzy"}]}, "headers", "match must be one of"),
        ({"methods": "GET"}, "methods", "JSON list of strings"),
        ({"protocols": ["gopher"]}, "protocols", "Protocols are among"),
        ({"cors_origins": ["*"], "cors_credentials": True}, "cors_origins", "origins listed"),
        ({"encoded_slashes": "decode"}, "encoded_slashes", "not a valid choice"),
        ({"path_type": "regex", "path": "^/a$", "case_insensitive": True}, "case_insensitive", "(?i)"),
    ],
)
def test_invalid_routes_are_refused_with_the_field_named(
    upstream: Upstream, fields: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        make_route(upstream, **fields).full_clean()
    assert field in caught.value.message_dict
    assert message in " ".join(caught.value.message_dict[field])


def test_a_conflicting_duplicate_is_refused(upstream: Upstream) -> None:
    factories.route(upstream=upstream, name="first", path="/api", methods=["GET", "POST"])
    with pytest.raises(ValidationError, match="already matches"):
        make_route(upstream, name="second", path="/api/", methods=["POST"]).full_clean()
    # Different priority, disjoint methods, or another host: no conflict.
    make_route(upstream, name="third", path="/api", priority=5).full_clean()
    make_route(upstream, name="fourth", path="/api", methods=["DELETE"]).full_clean()
    make_route(upstream, name="fifth", path="/api", hosts=["a.example.com"]).full_clean()


@pytest.mark.parametrize("url", ["ftp://x", "http://", "127.0.0.1:8000", "http://:80"])
def test_target_urls_must_be_http_with_a_host(upstream: Upstream, url: str) -> None:
    with pytest.raises(ValidationError):
        Target(upstream=upstream, url=url).full_clean()


def test_the_admin_refuses_a_broken_route_and_keeps_nothing(admin_client: Client, upstream: Upstream) -> None:
    response = admin_client.post(
        "/admin/proxy/route/add/",
        {
            "name": "broken",
            "enabled": "on",
            "upstream": upstream.pk,
            "priority": 0,
            "hosts": "[]",
            "path_type": "regex",
            "path": "^/(unclosed",
            "methods": "[]",
            "headers": "[]",
            "query": "[]",
            "protocols": '["http"]',
            "rewrite": "",
        },
    )
    assert response.status_code == 200
    assert "does not compile" in response.content.decode()
    assert not Route.objects.filter(name="broken").exists()


def test_the_admin_creates_an_upstream_with_targets(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/proxy/upstream/add/",
        {
            "name": "appliances",
            "description": "",
            "connect_timeout": "",
            "read_timeout": "",
            "targets-TOTAL_FORMS": "2",
            "targets-INITIAL_FORMS": "0",
            "targets-MIN_NUM_FORMS": "0",
            "targets-MAX_NUM_FORMS": "1000",
            "targets-0-url": "http://127.0.0.1:9001",
            "targets-0-weight": "3",
            "targets-0-enabled": "on",
            "targets-1-url": "gopher://nope",
            "targets-1-weight": "1",
            "targets-1-enabled": "on",
        },
    )
    assert response.status_code == 200  # the bad target keeps the form open
    assert not Upstream.objects.filter(name="appliances").exists()


def test_a_product_with_routes_cannot_be_deleted(upstream: Upstream) -> None:
    # A route without a product admits every active partner: deleting the product must not
    # quietly turn its routes into that.
    from django.db.models import ProtectedError

    product = factories.product(slug="p")
    factories.route(upstream=upstream, name="r", path="/p", product=product)
    with pytest.raises(ProtectedError):
        product.delete()
    assert Route.objects.get(name="r").product == product
