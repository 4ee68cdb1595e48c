"""The compiled route table (proxy/gateway/routing.py): pure unit tests, no DB, no network."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.gateway.canonical import canonicalise
from proxy.gateway.errors import BadRequest, MethodNotAllowed, RouteNotFound
from proxy.gateway.routing import (
    Route,
    RouteConfigError,
    RouteMatch,
    RouteTable,
    literal_prefix,
    segment_prefixes,
    split_host,
)


def spec(name: str, path: str = "/", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "upstream": "u",
        "path_type": "prefix",
        "path": path,
        "priority": 0,
        "hosts": [],
        "methods": [],
        "headers": [],
        "query": [],
        "protocols": ["http"],
        "rewrite": "",
        "strip_prefix": False,
    }
    base.update(extra)
    return base


def table(*specs: dict[str, Any]) -> RouteTable:
    return RouteTable.from_specs(specs)


def match(
    routes: RouteTable,
    path: str,
    *,
    host: str = "example.com",
    method: str = "GET",
    headers: dict[str, list[str]] | None = None,
    query: bytes = b"",
    protocol: str = "http",
) -> RouteMatch:
    return routes.match(
        host=host, path=path, method=method, headers=headers or {}, query_string=query, protocol=protocol
    )


def winner(routes: RouteTable, path: str, **kwargs: Any) -> str:
    return match(routes, path, **kwargs).route.name


def upstream_path(routes: RouteTable, path: str, **kwargs: Any) -> str | None:
    found = match(routes, path, **kwargs)
    return found.route.upstream_path(path, found.params, found.tail)


# --- precedence -------------------------------------------------------------------------------


def test_it_prefers_higher_priority() -> None:
    routes = table(spec("specific", "/api/v1/items", path_type="exact"), spec("catch-all", "/", priority=10))
    assert winner(routes, "/api/v1/items") == "catch-all"


def test_priority_outranks_host_specificity() -> None:
    routes = table(spec("exact-host", "/", hosts=["api.example.com"]), spec("any-host", "/", priority=1))
    assert winner(routes, "/x", host="api.example.com") == "any-host"


def test_exact_host_beats_wildcard_host_beats_any_host() -> None:
    routes = table(
        spec("any", "/api"),
        spec("wildcard", "/api", hosts=["*.example.com"]),
        spec("exact", "/api", hosts=["api.example.com"]),
    )
    assert winner(routes, "/api/x", host="api.example.com") == "exact"
    assert winner(routes, "/api/x", host="web.example.com") == "wildcard"
    assert winner(routes, "/api/x", host="other.org") == "any"


def test_host_specificity_outranks_path_specificity() -> None:
    routes = table(spec("any-host-exact", "/api/x", path_type="exact"), spec("host-prefix", "/", hosts=["a.io"]))
    assert winner(routes, "/api/x", host="a.io") == "host-prefix"


def test_exact_path_beats_regex_beats_prefix() -> None:
    routes = table(
        spec("prefix", "/items"),
        spec("regex", r"/items/(?P<id>\d+)", path_type="regex"),
        spec("exact", "/items/42", path_type="exact"),
    )
    assert winner(routes, "/items/42") == "exact"
    assert winner(routes, "/items/7") == "regex"
    assert winner(routes, "/items/abc") == "prefix"


def test_longer_prefix_wins() -> None:
    routes = table(spec("root", "/"), spec("api", "/api"), spec("v1", "/api/v1"), spec("v1-items", "/api/v1/items"))
    assert winner(routes, "/api/v1/items/3") == "v1-items"
    assert winner(routes, "/api/v1/other") == "v1"
    assert winner(routes, "/api/v2") == "api"
    assert winner(routes, "/elsewhere") == "root"


def test_longer_regex_literal_wins_among_regex_routes() -> None:
    routes = table(
        spec("short", r"/a/(?P<rest>.+)", path_type="regex"),
        spec("long", r"/a/b/(?P<rest>.+)", path_type="regex"),
    )
    assert winner(routes, "/a/b/c") == "long"
    assert winner(routes, "/a/c/d") == "short"


def test_name_breaks_ties() -> None:
    routes = table(spec("zeta", "/api"), spec("alpha", "/api"))
    assert winner(routes, "/api") == "alpha"
    assert [r.name for r in routes.routes] == ["alpha", "zeta"]


def test_a_lower_ranked_route_serves_requests_the_better_one_rejects() -> None:
    routes = table(
        spec("v2", "/api", priority=5, headers=[{"name": "X-Version", "match": "exact", "value": "2"}]),
        spec("default", "/api"),
    )
    assert winner(routes, "/api/x", headers={"x-version": ["2"]}) == "v2"
    assert winner(routes, "/api/x", headers={"x-version": ["1"]}) == "default"
    assert winner(routes, "/api/x") == "default"


# --- prefixes and paths -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1", "/api/v1/", "/api/v1/x", "/api/v1/x/y/z"])
def test_prefix_matches_itself_and_paths_below_it(path: str) -> None:
    assert winner(table(spec("v1", "/api/v1")), path) == "v1"


@pytest.mark.parametrize("path", ["/api/v10", "/api/v1x", "/api/v", "/api", "/", "/API/v1", "/x/api/v1"])
def test_prefix_only_matches_at_a_segment_boundary(path: str) -> None:
    with pytest.raises(RouteNotFound):
        match(table(spec("v1", "/api/v1")), path)


def test_prefix_tail_is_the_rest_of_the_path() -> None:
    routes = table(spec("v1", "/api/v1"))
    assert match(routes, "/api/v1/items/3").tail == "/items/3"
    assert match(routes, "/api/v1/").tail == "/"
    assert match(routes, "/api/v1").tail == ""


@pytest.mark.parametrize("path", ["/", "/a", "/a/b/c", "/api/v10", ""])
def test_root_prefix_matches_every_path(path: str) -> None:
    found = match(table(spec("root", "/")), path)
    assert found.route.name == "root"
    assert found.tail == path


@pytest.mark.parametrize("configured", ["/api/v1/", "/api/v1//", "/api/v1"])
def test_trailing_slash_of_a_prefix_is_normalised(configured: str) -> None:
    routes = table(spec("v1", configured))
    assert routes.by_name["v1"].path == "/api/v1"
    assert winner(routes, "/api/v1") == "v1"
    assert winner(routes, "/api/v1/x") == "v1"
    with pytest.raises(RouteNotFound):
        match(routes, "/api/v10")


def test_a_prefix_of_only_slashes_is_the_root() -> None:
    routes = table(spec("root", "///"))
    assert routes.by_name["root"].path == "/"
    assert winner(routes, "/anything") == "root"


def test_exact_route_matches_only_its_exact_path() -> None:
    routes = table(spec("health", "/health", path_type="exact"))
    found = match(routes, "/health")
    assert (found.route.name, found.params, found.tail) == ("health", {}, "")
    for other in ("/health/", "/health/x", "/healthz", "/"):
        with pytest.raises(RouteNotFound):
            match(routes, other)


def test_exact_route_keeps_its_trailing_slash() -> None:
    routes = table(spec("dir", "/docs/", path_type="exact"))
    assert winner(routes, "/docs/") == "dir"
    with pytest.raises(RouteNotFound):
        match(routes, "/docs")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b/c", ["/", "/a", "/a/b", "/a/b/c"]),
        ("/a/b/", ["/", "/a", "/a/b"]),
        ("/a", ["/", "/a"]),
        ("/", ["/"]),
        ("/api/v1/items", ["/", "/api", "/api/v1", "/api/v1/items"]),
    ],
)
def test_segment_prefixes_lists_every_prefix_ending_at_a_segment_boundary(path: str, expected: list[str]) -> None:
    assert segment_prefixes(path) == expected


# --- hosts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["a.example.com", "a.b.example.com", "x.y.z.example.com"])
def test_wildcard_host_matches_subdomains_at_any_depth(host: str) -> None:
    assert winner(table(spec("w", "/", hosts=["*.example.com"])), "/", host=host) == "w"


@pytest.mark.parametrize("host", ["example.com", "badexample.com", "example.com.evil.org", "example.org", ""])
def test_wildcard_host_does_not_match_the_apex_or_lookalikes(host: str) -> None:
    with pytest.raises(RouteNotFound):
        match(table(spec("w", "/", hosts=["*.example.com"])), "/", host=host)


def test_route_hosts_are_case_insensitive() -> None:
    routes = table(spec("exact", "/", hosts=["API.Example.COM"]), spec("wild", "/", hosts=[" *.Example.Org "]))
    assert routes.by_name["exact"].hosts == ("api.example.com",)
    assert winner(routes, "/", host=split_host("Api.EXAMPLE.com:443")) == "exact"
    assert winner(routes, "/", host=split_host("WWW.example.org")) == "wild"


def test_a_route_with_hosts_does_not_match_other_hosts() -> None:
    routes = table(spec("a", "/", hosts=["a.example.com", "b.example.com"]))
    assert winner(routes, "/", host="b.example.com") == "a"
    with pytest.raises(RouteNotFound):
        match(routes, "/", host="c.example.com")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com:8080", "example.com"),
        (" api.example.com:443 ", "api.example.com"),
        ("127.0.0.1:8000", "127.0.0.1"),
        ("[::1]", "[::1]"),
        ("[::1]:8443", "[::1]"),
        ("[2001:DB8::1]:80", "[2001:db8::1]"),
        ("", ""),
    ],
)
def test_split_host_drops_the_port_and_keeps_ipv6_brackets(raw: str, expected: str) -> None:
    assert split_host(raw) == expected


def test_ipv6_literal_host_route_matches_a_host_header_with_port() -> None:
    routes = table(spec("v6", "/", hosts=["[::1]"]))
    assert winner(routes, "/x", host=split_host("[::1]:8000")) == "v6"


# --- regex routes -----------------------------------------------------------------------------


def test_regex_route_captures_named_params() -> None:
    routes = table(spec("item", r"^/users/(?P<user>[a-z]+)/items/(?P<id>\d+)$", path_type="regex"))
    found = match(routes, "/users/ann/items/42")
    assert found.route.name == "item"
    assert found.params == {"user": "ann", "id": "42"}
    assert found.tail == ""


def test_regex_route_must_match_the_whole_path() -> None:
    routes = table(spec("item", r"/items/(?P<id>\d+)", path_type="regex"))
    assert winner(routes, "/items/1") == "item"
    for path in ("/items/1/extra", "/items/x", "/v2/items/1", "/items/"):
        with pytest.raises(RouteNotFound):
            match(routes, path)


def test_regex_route_leaves_unmatched_optional_groups_out_of_params() -> None:
    routes = table(spec("r", r"/files/(?P<name>\w+)(?:\.(?P<ext>\w+))?", path_type="regex"))
    assert match(routes, "/files/readme").params == {"name": "readme"}
    assert match(routes, "/files/readme.md").params == {"name": "readme", "ext": "md"}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"^/users/(?P<id>\d+)$", "/users/"),
        (r"\A/static/.*", "/static/"),
        (r"/api/v(?P<v>\d+)/items", "/api/v"),
        (r"/exact/path", "/exact/path"),
        (r"/a\.json", "/a.json"),
        (r"/ab*", "/a"),
        (r"/a/b?", "/a/"),
        (r"/a(?:b|c)", "/a"),
        (r".*\.json", ""),
        (r"(?P<all>.*)", ""),
    ],
)
def test_literal_prefix_is_the_text_every_match_starts_with(pattern: str, expected: str) -> None:
    assert literal_prefix(pattern) == expected


@pytest.mark.parametrize("pattern", [r"api|/v2", r"a|/b", r"/api|v2/x", r"^/a/(?P<x>\d+)$|^b"])
def test_literal_prefix_of_a_top_level_alternation_without_common_start_is_empty(pattern: str) -> None:
    assert literal_prefix(pattern) == ""


@pytest.mark.parametrize(
    ("pattern", "branches"),
    [
        (r"/users/(?P<id>\d+)|/admin", ["/users/1", "/admin"]),
        (r"/api/x|/api/y", ["/api/x", "/api/y"]),
        (r"/legacy/(?P<old>\d+)|/v2/(?P<new>\d+)", ["/legacy/1", "/v2/1"]),
    ],
)
def test_literal_prefix_of_an_alternation_is_shared_by_every_branch(pattern: str, branches: list[str]) -> None:
    prefix = literal_prefix(pattern)
    assert all(b.startswith(prefix) for b in branches)


def test_regex_route_with_top_level_alternation_matches_every_branch() -> None:
    routes = table(spec("alt", r"/legacy/(?P<old>\d+)|v2/(?P<new>\d+)|/new/(?P<slug>[a-z]+)", path_type="regex"))
    assert routes.by_name["alt"].literal == ""
    assert match(routes, "/legacy/7").params == {"old": "7"}
    assert match(routes, "/new/abc").params == {"slug": "abc"}


def test_regex_route_is_indexed_under_its_literal_prefix() -> None:
    routes = table(
        spec("users", r"^/users/(?P<id>\d+)$", path_type="regex"),
        spec("versioned", r"/api/v(?P<v>\d+)/items", path_type="regex"),
        spec("anywhere", r".*\.json", path_type="regex"),
    )
    assert [r.name for r in routes.candidates("h", "/users/5")] == ["users", "anywhere"]
    assert [r.name for r in routes.candidates("h", "/api/v3/items")] == ["versioned", "anywhere"]
    assert [r.name for r in routes.candidates("h", "/other/thing")] == ["anywhere"]
    assert winner(routes, "/api/v3/items", host="h") == "versioned"
    assert match(routes, "/api/v3/items", host="h").params == {"v": "3"}
    assert winner(routes, "/other/thing.json", host="h") == "anywhere"


def test_case_insensitive_regex_route_matches_any_casing() -> None:
    routes = table(spec("ci", r"(?i)/Users/(?P<id>\d+)", path_type="regex"))
    assert match(routes, "/Users/1").params == {"id": "1"}
    assert match(routes, "/users/2").params == {"id": "2"}
    assert match(routes, "/USERS/3").params == {"id": "3"}


# --- header and query matchers ----------------------------------------------------------------


def header_route(match_type: str, value: str = "", name: str = "X-API-Version") -> RouteTable:
    return table(spec("h", "/", headers=[{"name": name, "match": match_type, "value": value}]))


def test_header_exact_matcher() -> None:
    routes = header_route("exact", "2")
    assert winner(routes, "/", headers={"x-api-version": ["2"]}) == "h"
    assert winner(routes, "/", headers={"x-api-version": ["1", "2"]}) == "h"
    for headers in ({"x-api-version": ["20"]}, {"x-api-version": ["1"]}, {}):
        with pytest.raises(RouteNotFound):
            match(routes, "/", headers=headers)


def test_header_regex_matcher_searches_each_value() -> None:
    routes = header_route("regex", r"^beta-\d+$")
    assert winner(routes, "/", headers={"x-api-version": ["stable", "beta-3"]}) == "h"
    with pytest.raises(RouteNotFound):
        match(routes, "/", headers={"x-api-version": ["beta-x"]})
    with pytest.raises(RouteNotFound):
        match(routes, "/")


def test_header_present_matcher() -> None:
    routes = header_route("present")
    assert winner(routes, "/", headers={"x-api-version": ["anything"]}) == "h"
    assert winner(routes, "/", headers={"x-api-version": [""]}) == "h"
    with pytest.raises(RouteNotFound):
        match(routes, "/", headers={"x-other": ["1"]})


def test_header_absent_matcher() -> None:
    routes = header_route("absent")
    assert winner(routes, "/", headers={"x-other": ["1"]}) == "h"
    with pytest.raises(RouteNotFound):
        match(routes, "/", headers={"x-api-version": ["1"]})


@pytest.mark.parametrize("configured", ["X-API-Version", "x-api-version", "X-Api-VERSION", "  X-API-Version  "])
def test_header_matcher_names_are_case_insensitive(configured: str) -> None:
    routes = header_route("exact", "2", name=configured)
    assert routes.by_name["h"].header_matchers[0].name == "x-api-version"
    assert winner(routes, "/", headers={"x-api-version": ["2"]}) == "h"


def test_all_header_matchers_must_pass() -> None:
    routes = table(
        spec(
            "h",
            "/",
            headers=[
                {"name": "X-A", "match": "exact", "value": "1"},
                {"name": "X-B", "match": "absent"},
            ],
        )
    )
    assert winner(routes, "/", headers={"x-a": ["1"]}) == "h"
    with pytest.raises(RouteNotFound):
        match(routes, "/", headers={"x-a": ["1"], "x-b": ["1"]})


def query_route(match_type: str, value: str = "", name: str = "version") -> RouteTable:
    return table(spec("q", "/", query=[{"name": name, "match": match_type, "value": value}]))


def test_query_exact_matcher() -> None:
    routes = query_route("exact", "2")
    assert winner(routes, "/", query=b"version=2") == "q"
    assert winner(routes, "/", query=b"a=1&version=1&version=2") == "q"
    for query in (b"version=3", b"versions=2", b"", b"Version=2"):
        with pytest.raises(RouteNotFound):
            match(routes, "/", query=query)


def test_query_exact_matcher_compares_decoded_values() -> None:
    routes = query_route("exact", "a b/c")
    assert winner(routes, "/", query=b"version=a%20b%2Fc") == "q"
    assert winner(routes, "/", query=b"version=a+b/c") == "q"


def test_query_regex_matcher() -> None:
    routes = query_route("regex", r"^\d+$")
    assert winner(routes, "/", query=b"version=12") == "q"
    with pytest.raises(RouteNotFound):
        match(routes, "/", query=b"version=v12")


def test_query_present_matcher_accepts_blank_values() -> None:
    routes = query_route("present")
    assert winner(routes, "/", query=b"version=") == "q"
    assert winner(routes, "/", query=b"version") == "q"
    with pytest.raises(RouteNotFound):
        match(routes, "/", query=b"other=1")


def test_query_absent_matcher() -> None:
    routes = query_route("absent")
    assert winner(routes, "/", query=b"other=1") == "q"
    assert winner(routes, "/") == "q"
    with pytest.raises(RouteNotFound):
        match(routes, "/", query=b"version=1")


@pytest.mark.parametrize(
    ("matcher", "field"),
    [
        ({"name": "", "match": "exact", "value": "1"}, "headers"),
        ({"match": "present"}, "headers"),
        ({"name": "X-A", "match": "contains", "value": "1"}, "headers"),
        ({"name": "X-A", "match": "regex", "value": "(unclosed"}, "headers"),
    ],
)
def test_invalid_header_matcher_raises_route_config_error(matcher: dict[str, str], field: str) -> None:
    with pytest.raises(RouteConfigError) as caught:
        Route(spec("bad", "/", headers=[matcher]))
    assert caught.value.field == field


def test_invalid_query_matcher_raises_route_config_error_for_query() -> None:
    with pytest.raises(RouteConfigError) as caught:
        Route(spec("bad", "/", query=[{"name": "q", "match": "regex", "value": "[a-"}]))
    assert caught.value.field == "query"


# --- methods and protocols --------------------------------------------------------------------


def test_method_not_allowed_lists_the_union_of_allowed_methods() -> None:
    routes = table(
        spec("read", "/items", methods=["GET"]),
        spec("write", "/items", methods=["post", "PUT"]),
        spec("elsewhere", "/other", methods=["DELETE"]),
    )
    with pytest.raises(MethodNotAllowed) as caught:
        match(routes, "/items/1", method="DELETE")
    assert caught.value.status_code == 405
    assert caught.value.headers == [(b"allow", b"GET, POST, PUT")]


def test_a_matching_method_wins_over_method_not_allowed() -> None:
    routes = table(spec("read", "/items", methods=["GET"], priority=1), spec("write", "/items", methods=["POST"]))
    assert winner(routes, "/items", method="POST") == "write"
    assert winner(routes, "/items", method="GET") == "read"


def test_a_catch_all_route_serves_methods_a_better_route_does_not_allow() -> None:
    routes = table(spec("read-only", "/api", methods=["GET"]), spec("root", "/"))
    assert winner(routes, "/api/x", method="POST") == "root"


def test_route_without_methods_allows_any_method() -> None:
    routes = table(spec("any", "/"))
    for method in ("GET", "POST", "PATCH", "OPTIONS", "PURGE"):
        assert winner(routes, "/", method=method) == "any"


def test_no_matching_path_is_route_not_found() -> None:
    routes = table(spec("api", "/api", methods=["GET"]))
    with pytest.raises(RouteNotFound) as caught:
        match(routes, "/other", method="POST")
    assert caught.value.status_code == 404


def test_empty_table_is_route_not_found() -> None:
    with pytest.raises(RouteNotFound):
        match(table(), "/")


def test_a_route_failing_its_header_matchers_does_not_count_towards_allow() -> None:
    routes = table(spec("gated", "/api", methods=["GET"], headers=[{"name": "X-Key", "match": "present"}]))
    with pytest.raises(RouteNotFound):
        match(routes, "/api", method="POST")
    with pytest.raises(MethodNotAllowed):
        match(routes, "/api", method="POST", headers={"x-key": ["k"]})


def test_websocket_only_route_does_not_match_http() -> None:
    routes = table(spec("ws", "/socket", protocols=["websocket"]))
    with pytest.raises(RouteNotFound):
        match(routes, "/socket", protocol="http")
    assert winner(routes, "/socket", protocol="websocket") == "ws"


def test_protocol_filter_falls_through_to_the_next_route() -> None:
    routes = table(spec("ws", "/live", protocols=["websocket"]), spec("http", "/"))
    assert winner(routes, "/live", protocol="websocket") == "ws"
    assert winner(routes, "/live", protocol="http") == "http"


def test_routes_default_to_http_only() -> None:
    routes = table(spec("r", "/", protocols=[]))
    assert routes.by_name["r"].protocols == frozenset({"http"})
    with pytest.raises(RouteNotFound):
        match(routes, "/", protocol="websocket")


def test_a_route_may_serve_both_protocols() -> None:
    routes = table(spec("both", "/", protocols=["http", "websocket"]))
    assert winner(routes, "/", protocol="http") == "both"
    assert winner(routes, "/", protocol="websocket") == "both"


def test_unknown_protocol_raises_route_config_error() -> None:
    with pytest.raises(RouteConfigError) as caught:
        Route(spec("bad", "/", protocols=["grpc"]))
    assert caught.value.field == "protocols"


# --- rewrite and strip_prefix -----------------------------------------------------------------


def test_rewrite_template_fills_regex_params() -> None:
    routes = table(spec("item", r"^/items/(?P<id>[a-z0-9-]+)$", path_type="regex", rewrite="/v2/items/{id}/detail"))
    assert upstream_path(routes, "/items/abc-1") == "/v2/items/abc-1/detail"


def test_rewrite_template_path_is_the_prefix_tail() -> None:
    routes = table(spec("legacy", "/old/api", rewrite="/new{path}"))
    assert upstream_path(routes, "/old/api/users/1") == "/new/users/1"
    assert upstream_path(routes, "/old/api") == "/new"


def test_rewrite_template_path_of_a_regex_route_is_empty() -> None:
    routes = table(spec("r", r"/a/(?P<id>\d+)", path_type="regex", rewrite="/b/{id}{path}"))
    assert upstream_path(routes, "/a/5") == "/b/5"


def test_rewrite_percent_encodes_the_result() -> None:
    routes = table(spec("r", r"/files/(?P<name>.+)", path_type="regex", rewrite="/store/{name}"))
    assert upstream_path(routes, "/files/my report?.pdf") == "/store/my%20report%3F.pdf"


def test_strip_prefix_removes_the_matched_prefix() -> None:
    routes = table(spec("public", "/public/v1", strip_prefix=True))
    assert upstream_path(routes, "/public/v1/items/1") == "/items/1"
    assert upstream_path(routes, "/public/v1/") == "/"
    assert upstream_path(routes, "/public/v1") == "/"


def test_strip_prefix_on_the_root_prefix_forwards_the_raw_path() -> None:
    routes = table(spec("root", "/", strip_prefix=True))
    assert upstream_path(routes, "/a/b") is None


def test_strip_prefix_is_ignored_for_exact_and_regex_routes() -> None:
    routes = table(
        spec("exact", "/e", path_type="exact", strip_prefix=True),
        spec("regex", r"/r/\d+", path_type="regex", strip_prefix=True),
    )
    assert upstream_path(routes, "/e") is None
    assert upstream_path(routes, "/r/1") is None


def test_rewrite_takes_precedence_over_strip_prefix() -> None:
    routes = table(spec("r", "/api", strip_prefix=True, rewrite="/internal{path}"))
    assert upstream_path(routes, "/api/x") == "/internal/x"


def test_without_rewrite_or_strip_the_raw_path_is_forwarded() -> None:
    assert upstream_path(table(spec("r", "/api")), "/api/x") is None


@pytest.mark.parametrize(
    ("path_type", "path", "template"),
    [
        ("regex", r"/items/(?P<id>\d+)", "v2/{id}"),
        ("regex", r"/items/(?P<id>\d+)", "/v2/{nope}"),
        ("regex", r"/items/(?P<id>\d+)", "/v2/{id"),
        ("regex", r"/items/(?P<id>\d+)", "/v2/id}"),
        ("regex", r"/items/(?P<id>\d+)", "/v2/{{id}}"),
        ("regex", r"/items/(?P<id>\d+)", "/v2/{1}"),
        ("regex", r"/items/(?P<id>\d+)", "/v2/{ id }"),
        ("prefix", "/items", "/v2/{id}"),
        ("exact", "/items", "/v2/{id}"),
    ],
)
def test_invalid_rewrite_template_raises_route_config_error(path_type: str, path: str, template: str) -> None:
    with pytest.raises(RouteConfigError) as caught:
        Route(spec("bad", path, path_type=path_type, rewrite=template))
    assert caught.value.field == "rewrite"


def test_rewrite_error_names_the_available_fields() -> None:
    with pytest.raises(RouteConfigError, match=r"available: id, path"):
        Route(spec("bad", r"/items/(?P<id>\d+)", path_type="regex", rewrite="/v2/{slug}"))


@pytest.mark.parametrize("pattern", [r"/items/(?P<id>\d+", r"/items/[a-", r"/items/(?P<1>x)", r"*/x"])
def test_invalid_regex_raises_route_config_error(pattern: str) -> None:
    with pytest.raises(RouteConfigError) as caught:
        Route(spec("bad", pattern, path_type="regex"))
    assert caught.value.field == "path"


@pytest.mark.parametrize("path_type", ["prefix", "exact"])
def test_path_must_start_with_a_slash(path_type: str) -> None:
    with pytest.raises(RouteConfigError) as caught:
        Route(spec("bad", "api", path_type=path_type))
    assert caught.value.field == "path"


def test_unknown_path_type_raises_route_config_error() -> None:
    with pytest.raises(RouteConfigError) as caught:
        Route(spec("bad", "/", path_type="glob"))
    assert caught.value.field == "path_type"


@pytest.mark.parametrize("host", ["*", "*example.com", "a.*.example.com", "example.*", "**.example.com", "*.*.com"])
def test_bad_wildcard_host_raises_route_config_error(host: str) -> None:
    with pytest.raises(RouteConfigError) as caught:
        Route(spec("bad", "/", hosts=["ok.example.com", host]))
    assert caught.value.field == "hosts"


def test_route_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Route(spec("bad", "/", path_type="glob"))


# --- dot segments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/./b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/api/v1/../admin", "/api/admin"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/a/..", "/"),
        ("/.", "/"),
        ("/./", "/"),
        ("/a/b/./../c/", "/a/c/"),
        ("/a/..b/.c", "/a/..b/.c"),
        ("/a/b", "/a/b"),
        ("/", "/"),
    ],
)
def test_resolve_dot_segments(path: str, expected: str) -> None:
    assert canonicalise(path).path == expected


@pytest.mark.parametrize("path", ["/../x", "/..", "/a/../../x", "/./../x"])
def test_resolve_dot_segments_refuses_to_climb_above_the_root(path: str) -> None:
    with pytest.raises(BadRequest) as caught:
        canonicalise(path)
    assert caught.value.status_code == 400


def test_dot_segments_cannot_reach_a_route_through_another_prefix() -> None:
    routes = table(spec("public", "/api/v1"), spec("admin", "/admin"))
    assert winner(routes, canonicalise("/api/v1/../../admin/users").path) == "admin"
    with pytest.raises(RouteNotFound):
        match(routes, canonicalise("/api/v1/../x").path)


# --- scale ------------------------------------------------------------------------------------


def test_a_table_of_ten_thousand_prefix_routes_and_a_hundred_regex_routes_matches_correctly() -> None:
    specs = [spec(f"svc-{i:05d}", f"/svc{i}/api") for i in range(10_000)]
    specs += [spec(f"re-{j:03d}", rf"^/re{j}/items/(?P<id>\d+)$", path_type="regex") for j in range(100)]
    specs.append(spec("catch-all-regex", r"/svc\d+/special", path_type="regex"))
    routes = RouteTable.from_specs(specs)
    assert len(routes) == 10_101

    assert winner(routes, "/svc0/api") == "svc-00000"
    assert winner(routes, "/svc9999/api/x/y") == "svc-09999"
    assert winner(routes, "/svc4242/api") == "svc-04242"
    found = match(routes, "/re57/items/12")
    assert (found.route.name, found.params) == ("re-057", {"id": "12"})
    assert winner(routes, "/svc12/special") == "catch-all-regex"
    for missing in ("/svc10000/api", "/svc1/apis", "/re57/items/x", "/re100/items/1"):
        with pytest.raises(RouteNotFound):
            match(routes, missing)
    # The index keeps the candidate list small: the path's own prefix route plus the one regex route
    # whose literal prefix ("/svc") ends mid-segment and is therefore filed under "/".
    assert [r.name for r in routes.candidates("example.com", "/svc4242/api/x")] == ["catch-all-regex", "svc-04242"]
    assert [r.name for r in routes.candidates("example.com", "/re3/items/1")] == ["re-003", "catch-all-regex"]
