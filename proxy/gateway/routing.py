"""Phase 1, match: the compiled route table.

Routes are indexed by host (exact, wildcard suffix, any) and then by path (exact path, or the
path prefix at a segment boundary; regex routes are filed under the literal prefix of their
pattern). A request looks up at most ``hosts × path segments`` dictionary entries, so matching
cost does not grow with the number of routes.

Precedence among the routes whose host and path match: higher ``priority`` first, then the more
specific host (exact > wildcard > any), then exact path > regex > prefix, then the longer literal
path, then name. The first of those whose method, header and query matchers pass wins. If some
matched on everything but the method, the answer is 405 with ``Allow``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# sre_parse gives the literal prefix of a pattern exactly (alternation, groups, escapes) where
# a hand-written scan would guess; it is private but unchanged since 3.11.
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote

from proxy.gateway.canonical import ascii_lower
from proxy.gateway.errors import MethodNotAllowed, RouteNotFound
from proxy.gateway.spec import MatcherSpec, RouteSpec

if TYPE_CHECKING:  # auth.py imports this module (through context.py)
    from proxy.gateway.auth import RoutePolicy

PATH_TYPES = ("prefix", "exact", "regex")
MATCH_TYPES = ("exact", "regex", "present", "absent")
PROTOCOLS = ("http", "websocket")
_PATH_RANK = {"exact": 0, "regex": 1, "prefix": 2}
_TEMPLATE_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Characters kept as they are when a rewritten path is encoded again (RFC 3986 pchar + "/").
ENCODED_SLASHES = ("reject", "keep")
# A canonical path (canonical.py) keeps "%2F" and "%25" as text: encoding it again leaves "%" be.
_REQUOTE_SAFE = "/:@!$&'()*+,;=-._~%"


class RouteConfigError(ValueError):
    """A route description that cannot be compiled; ``field`` names the culprit."""

    def __init__(self, message: str, field: str = "path") -> None:
        super().__init__(message)
        self.field = field


def literal_prefix(pattern: str) -> str:
    """The literal text every match of ``pattern`` starts with ("" when there is none)."""
    parsed = sre_parse.parse(pattern)
    if parsed.state.flags & re.IGNORECASE:  # "(?i)/Users" also matches "/users": no exact literal
        return ""
    chars: list[str] = []
    for op, value in parsed:
        if op is sre_parse.LITERAL:
            chars.append(chr(value))
        elif op is sre_parse.AT:  # ^ and \A anchor, consume nothing
            continue
        else:
            break
    return "".join(chars)


def normalise_prefix(path: str) -> str:
    return path.rstrip("/") or "/"


def segment_prefixes(path: str) -> list[str]:
    """``/a/b/c`` → ``["/", "/a", "/a/b", "/a/b/c"]``: every prefix ending at a segment boundary."""
    prefixes = ["/"]
    end = path.find("/", 1)
    while end != -1:
        prefixes.append(path[:end])
        end = path.find("/", end + 1)
    if len(path) > 1 and not path.endswith("/"):
        prefixes.append(path)
    return prefixes


@dataclass(frozen=True, slots=True)
class FieldMatcher:
    """One header or query condition."""

    name: str
    match: str
    value: str
    pattern: re.Pattern[str] | None

    @classmethod
    def compile(cls, spec: MatcherSpec, *, where: str, field: str) -> FieldMatcher:
        name = str(spec.get("name", "")).strip()
        if not name:
            raise RouteConfigError(f"{where}: a matcher needs a name", field)
        match = str(spec.get("match", "exact"))
        if match not in MATCH_TYPES:
            raise RouteConfigError(f"{where}: match must be one of {', '.join(MATCH_TYPES)}", field)
        value = str(spec.get("value", ""))
        pattern = None
        if match == "regex":
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise RouteConfigError(f"{where}: regex {value!r} does not compile: {exc}", field) from None
        return cls(name.lower() if field == "headers" else name, match, value, pattern)

    def test(self, values: Sequence[str] | None) -> bool:
        if self.match == "absent":
            return not values
        if not values:
            return False
        if self.match == "present":
            return True
        if self.pattern is not None:
            return any(self.pattern.search(v) for v in values)
        return self.value in values


class Route:
    """A compiled route. ``spec`` keeps the snapshot's description for the later phases;
    ``policy`` (authentication and limits) is attached by Snapshot.compile."""

    policy: RoutePolicy

    __slots__ = (
        "id",
        "name",
        "spec",
        "upstream",
        "hosts",
        "path_type",
        "path",
        "regex",
        "methods",
        "header_matchers",
        "query_matchers",
        "priority",
        "strip_prefix",
        "rewrite",
        "preserve_host",
        "protocols",
        "encoded_slashes",
        "path_parameters",
        "case_insensitive",
        "order_key",
        "order",
        "literal",
        "policy",
    )

    def __init__(self, spec: RouteSpec) -> None:
        self.spec = spec
        self.id = spec.get("id")
        self.name = str(spec.get("name") or f"route-{self.id}")
        where = f"route {self.name!r}"
        self.upstream = spec.get("upstream")
        self.hosts = tuple(h.strip().lower() for h in spec.get("hosts") or () if h.strip())
        for host in self.hosts:
            if "*" in host and not (host.startswith("*.") and "*" not in host[2:]):
                raise RouteConfigError(f"{where}: wildcard hosts look like '*.example.com', got {host!r}", "hosts")
        self.path_type = spec.get("path_type", "prefix")
        if self.path_type not in PATH_TYPES:
            raise RouteConfigError(f"{where}: path_type must be one of {', '.join(PATH_TYPES)}", "path_type")
        raw_path = str(spec.get("path") or "/")
        self.regex: re.Pattern[str] | None = None
        if self.path_type == "regex":
            try:
                self.regex = re.compile(raw_path)
            except re.error as exc:
                raise RouteConfigError(f"{where}: path regex does not compile: {exc}") from None
            literal = literal_prefix(raw_path)
            self.literal = literal
            self.path = raw_path
        else:
            if not raw_path.startswith("/"):
                raise RouteConfigError(f"{where}: path must start with '/'")
            self.path = normalise_prefix(raw_path) if self.path_type == "prefix" else raw_path
            if spec.get("case_insensitive"):
                self.path = ascii_lower(self.path)
            self.literal = self.path
        self.methods = frozenset(m.upper() for m in spec.get("methods") or ())
        self.header_matchers = tuple(
            FieldMatcher.compile(h, where=f"{where} header matcher", field="headers") for h in spec.get("headers") or ()
        )
        self.query_matchers = tuple(
            FieldMatcher.compile(q, where=f"{where} query matcher", field="query") for q in spec.get("query") or ()
        )
        self.priority = int(spec.get("priority") or 0)
        self.strip_prefix = bool(spec.get("strip_prefix"))
        self.preserve_host = bool(spec.get("preserve_host"))
        # How this route takes what canonical.py flags: "%2F" (reject or keep), ";" parameters,
        # and the case of the path (a case-insensitive route matches "/Users" as "/users").
        self.encoded_slashes = spec.get("encoded_slashes") or "reject"
        if self.encoded_slashes not in ENCODED_SLASHES:
            raise RouteConfigError(
                f"{where}: encoded_slashes must be one of {', '.join(ENCODED_SLASHES)}", "encoded_slashes"
            )
        self.path_parameters = bool(spec.get("path_parameters"))
        self.case_insensitive = bool(spec.get("case_insensitive"))
        if self.case_insensitive and self.path_type == "regex":
            raise RouteConfigError(
                f"{where}: a regex route ignores case with (?i), not case_insensitive", "case_insensitive"
            )
        self.protocols = frozenset(spec.get("protocols") or ("http",))
        if not self.protocols <= set(PROTOCOLS):
            raise RouteConfigError(f"{where}: protocols must be among {', '.join(PROTOCOLS)}", "protocols")
        self.rewrite = compile_template(str(spec.get("rewrite") or ""), self, where=where)
        host_rank = 0 if not self.hosts else (2 if any("*" not in h for h in self.hosts) else 1)
        self.order_key = (-self.priority, -host_rank, _PATH_RANK[self.path_type], -len(self.literal), self.name)
        self.order = 0

    def path_params_names(self) -> set[str]:
        return set(self.regex.groupindex) if self.regex is not None else set()

    def match_path(self, path: str) -> tuple[dict[str, str], str] | None:
        """Path parameters and the tail after the matched prefix, or None."""
        if self.path_type == "prefix":
            if self.path == "/":
                return {}, path
            return {}, path[len(self.path) :]
        if self.path_type == "exact":
            compared = ascii_lower(path) if self.case_insensitive else path
            return ({}, "") if compared == self.path else None
        assert self.regex is not None
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        params = {k: v for k, v in found.groupdict().items() if v is not None}
        return params, path[found.end(0) :] if found.end(0) < len(path) else ""

    def upstream_path(self, path: str, params: Mapping[str, str], tail: str) -> str | None:
        """The path to send upstream, or None to forward the client's raw path unchanged."""
        if self.rewrite is not None:
            values = dict(params)
            values["path"] = tail
            return quote("".join(lit + values.get(name, "") for lit, name in self.rewrite), safe=_REQUOTE_SAFE)
        if self.strip_prefix and self.path_type == "prefix" and self.path != "/":
            return quote(tail or "/", safe=_REQUOTE_SAFE)
        return None


def compile_template(template: str, route: Route, *, where: str) -> tuple[tuple[str, str], ...] | None:
    """``/v2/items/{id}{path}`` → ``(("/v2/items/", "id"), ("", "path"), ...)``."""
    if not template:
        return None
    if not template.startswith("/"):
        raise RouteConfigError(f"{where}: rewrite must start with '/'", "rewrite")
    allowed = route.path_params_names() | {"path"}
    parts: list[tuple[str, str]] = []
    position = 0
    for found in _TEMPLATE_FIELD.finditer(template):
        if found.group(1) not in allowed:
            raise RouteConfigError(
                f"{where}: rewrite uses {{{found.group(1)}}}, which the path does not capture "
                f"(available: {', '.join(sorted(allowed))})",
                "rewrite",
            )
        parts.append((template[position : found.start()], found.group(1)))
        position = found.end()
    rest = template[position:]
    if "{" in rest or "}" in rest or any("{" in lit or "}" in lit for lit, _ in parts):
        raise RouteConfigError(f"{where}: rewrite has an unbalanced or invalid {{placeholder}}", "rewrite")
    if rest:
        parts.append((rest, ""))
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    params: dict[str, str]
    tail: str


class _Bucket:
    __slots__ = ("exact", "prefix", "folded_exact", "folded_prefix")

    def __init__(self) -> None:
        self.exact: dict[str, list[Route]] = {}
        self.prefix: dict[str, list[Route]] = {}
        # Case-insensitive routes, under their lower-cased path: looked up with the request's
        # path lower-cased, only when there are any.
        self.folded_exact: dict[str, list[Route]] = {}
        self.folded_prefix: dict[str, list[Route]] = {}

    def add(self, route: Route) -> None:
        if route.path_type == "exact":
            (self.folded_exact if route.case_insensitive else self.exact).setdefault(route.path, []).append(route)
        elif route.path_type == "prefix":
            (self.folded_prefix if route.case_insensitive else self.prefix).setdefault(route.path, []).append(route)
        else:
            literal = route.literal
            key = normalise_prefix(literal[: literal.rfind("/") + 1]) if literal.startswith("/") else "/"
            self.prefix.setdefault(key, []).append(route)


def split_host(raw: str) -> str:
    """Lower-case host without port; IPv6 literals keep their brackets."""
    host = raw.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    colon = host.rfind(":")
    host = host[:colon] if colon != -1 else host
    return host.rstrip(".")  # "example.com." is the same host (fully-qualified form)


class RouteTable:
    """Immutable once built; a new configuration builds a new table."""

    def __init__(self, routes: Iterable[Route]) -> None:
        ordered = sorted(routes, key=lambda r: r.order_key)
        for index, route in enumerate(ordered):
            route.order = index
        self.routes: tuple[Route, ...] = tuple(ordered)
        self.by_name = {r.name: r for r in ordered}
        self._exact_hosts: dict[str, _Bucket] = {}
        self._wildcard_hosts: dict[str, _Bucket] = {}
        self._any_host = _Bucket()
        for route in ordered:
            if not route.hosts:
                self._any_host.add(route)
            for host in route.hosts:
                if host.startswith("*."):
                    self._wildcard_hosts.setdefault(host[1:], _Bucket()).add(route)
                else:
                    self._exact_hosts.setdefault(host, _Bucket()).add(route)
        self._has_wildcards = bool(self._wildcard_hosts)

    @classmethod
    def from_specs(cls, specs: Iterable[RouteSpec]) -> RouteTable:
        return cls(Route(spec) for spec in specs)

    def __len__(self) -> int:
        return len(self.routes)

    def _buckets(self, host: str) -> list[_Bucket]:
        buckets = []
        bucket = self._exact_hosts.get(host)
        if bucket is not None:
            buckets.append(bucket)
        if self._has_wildcards:
            dot = host.find(".")
            while dot != -1:
                bucket = self._wildcard_hosts.get(host[dot:])
                if bucket is not None:
                    buckets.append(bucket)
                dot = host.find(".", dot + 1)
        buckets.append(self._any_host)
        return buckets

    def candidates(self, host: str, path: str) -> list[Route]:
        found: list[Route] = []
        prefixes = segment_prefixes(path)
        for bucket in self._buckets(host):
            routes = bucket.exact.get(path)
            if routes:
                found.extend(routes)
            if bucket.prefix:
                for prefix in prefixes:
                    routes = bucket.prefix.get(prefix)
                    if routes:
                        found.extend(routes)
            if bucket.folded_exact or bucket.folded_prefix:
                folded = ascii_lower(path)
                found.extend(bucket.folded_exact.get(folded, ()))
                for prefix in segment_prefixes(folded):
                    found.extend(bucket.folded_prefix.get(prefix, ()))
        if len(found) > 1:
            found.sort(key=_order)
        return found

    def match(
        self,
        *,
        host: str,
        path: str,
        method: str,
        headers: Mapping[str, list[str]],
        query_string: bytes,
        protocol: str = "http",
    ) -> RouteMatch:
        """The winning route for a request, or RouteNotFound / MethodNotAllowed."""
        allowed: set[str] | None = None  # built only for a 405
        query: dict[str, list[str]] | None = None
        for route in self.candidates(host, path):
            if protocol not in route.protocols:
                continue
            matched = route.match_path(path)
            if matched is None:
                continue
            if route.header_matchers and not all(m.test(headers.get(m.name)) for m in route.header_matchers):
                continue
            if route.query_matchers:
                if query is None:
                    query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
                if not all(m.test(query.get(m.name)) for m in route.query_matchers):
                    continue
            if route.methods and method not in route.methods:
                allowed = set(route.methods) if allowed is None else allowed | route.methods
                continue
            return RouteMatch(route, matched[0], matched[1])
        if allowed:
            raise MethodNotAllowed(headers=[(b"allow", ", ".join(sorted(allowed)).encode())])
        raise RouteNotFound()


def _order(route: Route) -> int:
    return route.order
