"""API key authentication through a real gateway (uvicorn) in front of the real demo upstream.

Personas, all calling the "appliances" product:
- alice: a key of acme (active, subscribed to appliances on the gold plan);
- rita: another acme key, limited to the billing product;
- eve: an acme key that expired an hour ago;
- ghost: a well-formed acme key that was revoked, so the snapshot no longer has it;
- pat: the key of pending-co, whose account is not approved yet;
- sam: the key of suspended-co;
- nora: the key of idle-co, active but subscribed to nothing.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from proxy.gateway import apikeys

pytestmark = pytest.mark.timeout(60)

PEPPER = b"pepper-of-the-auth-tests"
PRODUCT = "appliances"

PLANS = [{"slug": "gold", "scope": "key", "limits": {"minute": 100_000}, "quotas": {}}]
PARTNERS = [
    {"id": 1, "slug": "acme", "status": "active", "subscriptions": {PRODUCT: "gold", "billing": "gold"}},
    {"id": 2, "slug": "pending-co", "status": "pending", "subscriptions": {PRODUCT: "gold"}},
    {"id": 3, "slug": "suspended-co", "status": "suspended", "subscriptions": {PRODUCT: "gold"}},
    {"id": 4, "slug": "idle-co", "status": "active", "subscriptions": {}},
]


def route(name: str, path: str, **extra: Any) -> dict[str, Any]:
    """A prefix route to the demo's /echo, which answers with the request it received."""
    extra.setdefault("auth", "key")
    extra.setdefault("product", PRODUCT)
    return {"name": name, "path": path, "path_type": "prefix", "upstream": "demo", "rewrite": "/echo{path}", **extra}


def upstream(name: str, url: str) -> dict[str, Any]:
    return {"name": name, "targets": [{"url": url, "weight": 1}]}


def issue_key(
    key_id: int, partner: int, *, products: tuple[str, ...] = (), expires: float | None = None
) -> tuple[str, dict[str, Any]]:
    """A new key and its snapshot entry, as the control plane stores it (prefix + keyed hash)."""
    secret, prefix = apikeys.generate()
    spec = {
        "id": key_id,
        "prefix": prefix,
        "hash": apikeys.digest(PEPPER, secret),
        "partner": partner,
        "products": list(products),
        "expires": expires,
    }
    return secret, spec


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    if status == 401:
        assert response.headers["www-authenticate"].startswith('Bearer realm="api"')
    else:
        assert "www-authenticate" not in response.headers


@pytest.fixture
def keys() -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        "alice": issue_key(1, 1),
        "rita": issue_key(2, 1, products=("billing",)),
        "eve": issue_key(3, 1, expires=time.time() - 3600),
        "ghost": issue_key(4, 1),
        "pat": issue_key(5, 2),
        "sam": issue_key(6, 3),
        "nora": issue_key(7, 4),
    }


@pytest.fixture
def gateway(static_gateway: Any, demo_upstream: str, keys: dict[str, tuple[str, dict[str, Any]]]) -> Iterator[Any]:
    data = {
        "upstreams": [upstream("demo", demo_upstream)],
        "routes": [
            route("keyed", "/keyed"),
            route("either", "/either", auth="key_or_jwt"),
            route("query", "/query", allow_query_key=True),
            route("open", "/open", auth="public", product=None),
        ],
        "plans": PLANS,
        "partners": PARTNERS,
        "keys": [spec for name, (_, spec) in keys.items() if name != "ghost"],
        "jwt_issuers": [],
    }
    yield static_gateway(data, api_key_pepper=PEPPER)


@pytest.fixture
def client(gateway: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        yield client


@pytest.fixture
def alice(keys: dict[str, tuple[str, dict[str, Any]]]) -> str:
    return keys["alice"][0]


def test_it_refuses_a_request_without_credentials(client: httpx.Client) -> None:
    response = client.get("/keyed/x")
    assert_refused(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(lambda key: {"Authorization": f"Bearer {key}"}, id="authorization-bearer"),
        pytest.param(lambda key: {"Authorization": f"bearer   {key}"}, id="scheme-is-case-insensitive"),
        pytest.param(lambda key: {"X-API-Key": key}, id="x-api-key"),
    ],
)
def test_it_accepts_a_valid_key(client: httpx.Client, alice: str, header: Any) -> None:
    response = client.get("/keyed/x", headers=header(alice))
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "/echo/x"


def test_the_upstream_learns_who_is_calling_and_never_what_the_client_claims(client: httpx.Client, alice: str) -> None:
    spoofed = [
        ("X-Partner-ID", "evil-corp"),
        ("x-partner-id", "evil-corp-2"),
        ("X-Key-ID", "deadbeef"),
        ("X-Plan", "platinum"),
    ]
    response = client.get("/keyed/x", headers=[("X-API-Key", alice), *spoofed])
    headers = response.json()["headers"]
    # The demo joins repeated headers with ", ": equality means the client's copies are gone.
    assert headers["x-partner-id"] == "acme"
    assert headers["x-key-id"] == apikeys.split(alice)
    assert headers["x-plan"] == "gold"

    anonymous = client.get("/open/x", headers=spoofed).json()["headers"]
    for name in ("x-partner-id", "x-key-id", "x-plan"):
        assert name not in anonymous


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_the_key_itself_never_reaches_the_upstream(client: httpx.Client, alice: str, header: str) -> None:
    value = alice if header == "X-API-Key" else f"Bearer {alice}"
    response = client.get("/keyed/x", headers={header: value, "X-Other": "kept"})
    assert response.status_code == 200
    headers = response.json()["headers"]
    assert header.lower() not in headers
    assert alice not in response.text
    assert headers["x-other"] == "kept"


def test_a_query_key_works_on_routes_that_allow_it_and_is_not_forwarded(client: httpx.Client, alice: str) -> None:
    response = client.get(f"/query/x?a=1&api_key={alice}&b=two")
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["query_string"] == "a=1&b=two"
    assert seen["headers"]["x-key-id"] == apikeys.split(alice)


def test_removing_the_query_key_leaves_the_other_parameters_byte_for_byte(client: httpx.Client, alice: str) -> None:
    before, after = "q=caf%C3%A9&raw=%FF&space=a%20b", "plus=a+b&flag&empty=&&last"
    response = client.get(f"/query/x?{before}&api_key={alice}&{after}")
    assert response.status_code == 200, response.text
    assert response.json()["query_string"] == f"{before}&{after}"


def test_a_query_key_is_refused_on_routes_that_do_not_allow_it(client: httpx.Client, alice: str) -> None:
    assert_refused(client.get(f"/keyed/x?api_key={alice}"), 401, "unauthorized")


@pytest.mark.parametrize(
    "query", ["api_key=", "api_key", "api_key=not-a-key", "api_key=%FF%FE", "api_key=" + "k" * 10240]
)
def test_a_bad_query_key_is_a_401(client: httpx.Client, query: str) -> None:
    assert_refused(client.get(f"/query/x?{query}"), 401, "unauthorized")


def test_a_revoked_key_is_a_401(client: httpx.Client, keys: dict[str, tuple[str, dict[str, Any]]]) -> None:
    response = client.get("/keyed/x", headers={"X-API-Key": keys["ghost"][0]})
    assert_refused(response, 401, "unauthorized")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_wrong_secret_behind_a_known_prefix_is_a_401(client: httpx.Client, alice: str) -> None:
    prefix = apikeys.split(alice)
    forged = f"gw_{prefix}_{'A' * apikeys.SECRET_LENGTH}"
    assert apikeys.split(forged) == prefix
    for headers in ({"X-API-Key": forged}, {"Authorization": f"Bearer {forged}"}):
        assert_refused(client.get("/keyed/x", headers=headers), 401, "unauthorized")


def test_an_expired_key_is_a_403(client: httpx.Client, keys: dict[str, tuple[str, dict[str, Any]]]) -> None:
    assert_refused(client.get("/keyed/x", headers={"X-API-Key": keys["eve"][0]}), 403, "key_expired")


@pytest.mark.parametrize(("persona", "code"), [("pat", "partner_pending"), ("sam", "partner_suspended")])
def test_a_partner_that_is_not_active_is_a_403(
    client: httpx.Client, keys: dict[str, tuple[str, dict[str, Any]]], persona: str, code: str
) -> None:
    assert_refused(client.get("/keyed/x", headers={"X-API-Key": keys[persona][0]}), 403, code)


def test_a_key_limited_to_other_products_is_a_403(
    client: httpx.Client, keys: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    assert_refused(client.get("/keyed/x", headers={"X-API-Key": keys["rita"][0]}), 403, "product_not_allowed")


def test_a_partner_without_a_subscription_is_a_403(
    client: httpx.Client, keys: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    assert_refused(client.get("/keyed/x", headers={"X-API-Key": keys["nora"][0]}), 403, "not_subscribed")


def test_a_public_route_needs_no_credentials(client: httpx.Client) -> None:
    response = client.get("/open/x")
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "/echo/x"


BAD_CREDENTIALS = [
    pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-scheme"),
    pytest.param({"Authorization": "Token {alice}"}, id="valid-key-under-another-scheme"),
    pytest.param({"Authorization": "Bearer"}, id="bearer-without-value"),
    pytest.param({"Authorization": "Bearer\t{alice}"}, id="tab-instead-of-space"),
    pytest.param({"Authorization": ""}, id="empty-authorization"),
    pytest.param({"Authorization": "Bearer {alice}, Bearer {alice}"}, id="two-credentials-in-one-header"),
    pytest.param({"Authorization": "Bearer gw_" + "a" * 10240}, id="10kB-key-as-bearer"),
    pytest.param({"X-API-Key": "k" * 10240}, id="10kB-x-api-key"),
    pytest.param({"Authorization": "Bearer " + "e30." * 2560}, id="10kB-token"),
    pytest.param({"Authorization": "Bearer not-a-key"}, id="garbage-bearer"),
    pytest.param({"Authorization": "Bearer a.b.c"}, id="garbage-jwt"),
    pytest.param({"Authorization": "Bearer e30.e30.e30"}, id="empty-jwt-parts"),
    pytest.param({"Authorization": "Bearer ...."}, id="dots"),
    pytest.param({"Authorization": "Bearer W10.W10.W10"}, id="jwt-of-json-arrays"),
    pytest.param({"X-API-Key": ""}, id="empty-x-api-key"),
    pytest.param({"X-API-Key": "gw_"}, id="bare-key-marker"),
    pytest.param({"X-API-Key": "gw_abcdefgh_short"}, id="short-secret"),
    pytest.param({"X-API-Key": "gw_ABCDEFGH_" + "a" * 32}, id="upper-case-prefix"),
    pytest.param({"X-API-Key": "{alice}x"}, id="valid-key-plus-a-character"),
    pytest.param({"X-API-Key": "{alice} {alice}"}, id="key-twice"),
    pytest.param({"X-API-Key": ("gw_abcdefgh_" + "a" * 31 + "\u00e9").encode("latin-1")}, id="latin-1-in-key"),
    pytest.param({"X-API-Key": "\u043a\u043b\u044e\u0447".encode()}, id="utf-8-x-api-key"),
    pytest.param({"Authorization": b"Bearer gw_\xff\xfe\xfd"}, id="non-ascii-bearer"),
    pytest.param({"Authorization": b"Bearer \xc3\xa9.\xc3\xa9.\xc3\xa9"}, id="non-ascii-jwt"),
]


@pytest.mark.parametrize("path", ["/keyed/x", "/either/x"])
@pytest.mark.parametrize("headers", BAD_CREDENTIALS)
def test_bad_credentials_are_a_json_401_never_a_500(
    client: httpx.Client, alice: str, path: str, headers: dict[str, str | bytes]
) -> None:
    headers = {k: v.replace("{alice}", alice) if isinstance(v, str) else v for k, v in headers.items()}
    assert_refused(client.get(path, headers=headers), 401, "unauthorized")


def raw_get(base_url: str, path: str, header_lines: bytes) -> tuple[int, bytes, bytes]:
    """Send header bytes exactly as given: (status, head, body)."""
    port = int(base_url.rsplit(":", 1)[1])
    request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header_lines + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


@pytest.mark.parametrize(
    "header_lines",
    [
        pytest.param(b"Authorization: Bearer gw_\x80\x81\x82\xff\r\n", id="high-bytes-bearer"),
        pytest.param("X-API-Key: gw_abcdefgh_ключ\r\n".encode(), id="utf-8-x-api-key"),
        pytest.param(b"Authorization: Bearer \xef\xbb\xbfgw_abcdefgh_" + b"a" * 32 + b"\r\n", id="bom-before-key"),
        pytest.param(b"Authorization: \xff\xfe\r\n", id="non-ascii-scheme"),
        pytest.param(b"Authorization: Bearer    \r\n", id="bearer-with-blanks"),
    ],
)
def test_non_ascii_bytes_on_the_wire_are_a_401(gateway: Any, header_lines: bytes) -> None:
    for path in ("/keyed/x", "/either/x"):
        status, head, body = raw_get(gateway.url, path, header_lines)
        assert status == 401, body
        assert b"\r\nwww-authenticate: bearer " in head.lower()
        assert json.loads(body)["error"]["code"] == "unauthorized"
