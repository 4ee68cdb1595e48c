"""Permissions are exact: docs/admin-api.md lists every admin API operation with the permissions
it needs, and each row is checked here against the schema and three users:

- rita, a view-only operator: past the check exactly where the row names only ``view_`` rights;
- nobody, staff without any permission: 403 everywhere but the schema and its Swagger UI;
- a staff user holding exactly the row's permissions: past the check (not 403).
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from drf_spectacular.generators import SchemaGenerator

from proxy import services
from proxy.models import JwtIssuer
from tests.adminapi.factories import client_for, sample_config, staff
from tests.servers import ROOT

PREFIX = "/api/admin/v1"
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/\S*)` \| (.+?) \|$")
ANY_STAFF = "any active staff user"


def expand(spec: str) -> list[str]:
    """``proxy.{view,add}_{route,plan}`` → the four names."""
    parts = re.split(r"\{([^}]*)\}", spec)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(combo) for combo in itertools.product(*choices)]


def documented() -> dict[tuple[str, str], list[str] | None]:
    """(method, path) → permission names, or None for "any active staff user"."""
    table: dict[tuple[str, str], list[str] | None] = {}
    for line in (ROOT / "docs" / "admin-api.md").read_text().splitlines():
        found = ROW.match(line.strip())
        if found:
            method, path, perms = found.groups()
            names = None if perms.strip() == ANY_STAFF else [n for p in perms.split(", ") for n in expand(p.strip("`"))]
            table[(method, path)] = names
    return table


DOCUMENTED = documented()


def test_every_operation_of_the_schema_is_documented_and_nothing_else() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {
        (method.upper(), path.removeprefix(PREFIX))
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    operations |= {("GET", "/schema/"), ("GET", "/docs/")}
    assert set(DOCUMENTED) == operations


def concrete(path: str, objects: dict[str, Any]) -> str:
    resource = path.strip("/").split("/")[0]
    value = {
        "routes": "appliances-v1",
        "upstreams": "appliances",
        "products": "appliance-api",
        "plans": "gold",
        "partners": "acme",
        "keys": objects["key"].prefix,
        "targets": objects["target"].pk,
        "subscriptions": objects["subscription"].pk,
        "jwt-issuers": objects["issuer"].pk,
        "audit": objects["audit"],
    }.get(resource, "")
    return PREFIX + re.sub(r"\{[a-z]+\}", str(value), path)


@pytest.fixture
def objects(db: None) -> dict[str, Any]:
    config = sample_config()
    key, _ = services.api_key_create(partner=config["partner"], name="k")
    issuer = JwtIssuer.objects.create(
        name="idp", issuer="https://idp.example", jwks_url="https://idp.example/jwks", audience="api"
    )
    from audit.models import AuditLog

    return {
        "key": key,
        "target": config["upstream"].targets.get(),
        "subscription": config["partner"].subscriptions.get(),
        "issuer": issuer,
        "audit": AuditLog.objects.order_by("id").values_list("id", flat=True).first(),
    }


def call(client: Any, method: str, url: str) -> int:
    # An empty body: permissions are checked before the body is read, so a refusal is 403 and
    # anything else means the permission check was passed.
    status: int = getattr(client, method.lower())(url, {}, format="json").status_code
    return status


OPERATIONS = sorted(DOCUMENTED)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_the_documented_permissions_are_exactly_what_each_operation_needs(
    objects: dict[str, Any], method: str, path: str
) -> None:
    needs = DOCUMENTED[(method, path)]
    url = concrete(path, objects)
    nobody = User.objects.create_user("nobody", password="x", is_staff=True)
    rita = staff("rita", view_only=True)

    nobody_status = call(client_for(nobody), method, url)
    assert (nobody_status == 403) == (needs is not None), nobody_status

    read_only = needs is None or all(".view_" in n for n in needs)
    rita_status = call(client_for(rita), method, url)
    assert (rita_status == 403) == (not read_only), rita_status

    if needs:
        holder = User.objects.create_user("holder", password="x", is_staff=True)
        for name in needs:
            app_label, codename = name.split(".")
            holder.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        # Each one is needed: without any single permission of the row, 403. (First: with all of
        # them a DELETE succeeds, and what it deleted answers 404 afterwards.)
        for missing in needs:
            app_label, codename = missing.split(".")
            holder.user_permissions.remove(Permission.objects.get(content_type__app_label=app_label, codename=codename))
            holder = User.objects.get(pk=holder.pk)  # forget the cached permissions
            assert call(client_for(holder), method, url) == 403, missing
            holder.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        holder = User.objects.get(pk=holder.pk)
        assert call(client_for(holder), method, url) != 403
