"""Route confusion, tried as an attacker would: a private route behind a key and a public
catch-all in front of one upstream that merges slashes, strips ';' parameters and ignores case
(as many do). No spelling of a private path may reach it through the public route.

Raw request lines go over a socket, so no client library normalises them first.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.gateway.canonical import canonicalise, walk
from proxy.gateway.errors import BadRequest

pytestmark = pytest.mark.timeout(60)


def raw_get(port: int, target: str, headers: str = "") -> tuple[int, dict[str, Any]]:
    """Send one request line byte for byte; the status and the JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: api.example.com\r\n{headers}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {}


@pytest.fixture
def gateway(static_gateway: Any, demo_upstream: str) -> Any:
    def route(name: str, path: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "path": path, "upstream": "demo", "rewrite": "/echo{path}", **extra}

    data = {
        "upstreams": [{"name": "demo", "targets": [{"url": demo_upstream, "weight": 1}]}],
        "routes": [
            route("private", "/private", auth="key", case_insensitive=True),
            route("public", "/", auth="public"),
            route("files", "/files", auth="public", encoded_slashes="keep", path_parameters=True),
        ],
    }
    return static_gateway(data)


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [
        ("//private/x", 401, "unauthorized"),  # merged: it is the private route
        ("/./private/x", 401, "unauthorized"),
        ("/%2e/private/x", 401, "unauthorized"),
        ("/public/%2E%2e/private/x", 401, "unauthorized"),
        ("/PRIVATE/x", 401, "unauthorized"),  # a case-insensitive route
        ("/Private/../private/x", 401, "unauthorized"),
        ("/public/..;/private/x", 400, "bad_path"),  # Tomcat reads "..;" as ".."
        ("/private;jsessionid=1/x", 400, "bad_path"),
        ("/x/..\\private", 400, "bad_path"),
        ("/x/..%5Cprivate", 400, "bad_path"),
        ("/x/%00", 400, "bad_path"),
        ("/x/%zz", 400, "bad_path"),
        ("/public%2F..%2Fprivate/x", 400, "encoded_slash"),
        ("/../private", 400, "bad_request"),
    ],
)
def test_no_spelling_of_a_private_path_goes_through_the_public_route(
    gateway: Any, target: str, status: int, code: str
) -> None:
    got, body = raw_get(gateway.port, target)
    assert (got, body.get("error", {}).get("code")) == (status, code), (target, body)


def test_the_upstream_gets_exactly_the_canonical_path_that_was_matched(gateway: Any) -> None:
    status, body = raw_get(gateway.port, "//public//a/./b/%7euser/%e2%82%ac/")
    assert status == 200
    assert body["path"] == "/echo/public/a/b/~user/%E2%82%AC/"


def test_a_route_may_keep_encoded_slashes_and_parameters(gateway: Any) -> None:
    status, body = raw_get(gateway.port, "/files/dir%2Fname;v=2")
    assert status == 200
    assert body["path"] == "/echo/dir%2Fname;v=2"  # the rewrite keeps the %2F, not %252F


@pytest.mark.parametrize(("raw", "error"), [("/a/%2", "invalid percent"), ("/ä", "forbidden"), ("/..", "climbs")])
def test_it_refuses_what_has_no_canonical_form(raw: str, error: str) -> None:
    with pytest.raises(BadRequest) as caught:
        canonicalise(raw)
    assert error in caught.value.detail


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="/.~-_aZ09;%2Fe:@!$&'()*+,=\\", max_size=24))
def test_the_fast_path_agrees_with_the_walk(raw: str) -> None:
    try:
        slow = walk("/" + raw)
    except BadRequest:
        slow = None
    try:
        fast = canonicalise("/" + raw)
    except BadRequest:
        fast = None
    assert fast == slow
