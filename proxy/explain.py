"""Explain a request: what the gateway would do with it, and why, without doing it.

The verdict is the data plane's own admission (proxy/gateway/pipeline.py) run as a dry run on a
snapshot compiled from the database: the same match, client address and IP rules, CORS,
authentication (or a simulated key or partner), limits and upstream choice as HTTP and
WebSocket traffic, except that a ``LimitPeek`` reads the counters instead of counting. Nothing
is forwarded and no quota is consumed.

On top of the verdict, a diagnosis that the gateway itself never needs: every route's matchers
tested one by one (``route_checks``), so the answer can say why the winner matched and, for the
nearest routes that did not, which matcher failed. The checks only report; they decide nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

from proxy.gateway import apikeys
from proxy.gateway.auth import Authenticator, RoutePolicy
from proxy.gateway.config import GatewayConfig
from proxy.gateway.context import RequestContext
from proxy.gateway.errors import GatewayError
from proxy.gateway.iprules import ClientAddress
from proxy.gateway.pipeline import Admission, Admitted, Simulation, choose_upstream
from proxy.gateway.ratelimit import LimitPeek, LimitState
from proxy.gateway.redis_urls import is_cluster
from proxy.gateway.routing import FieldMatcher, Route, segment_prefixes
from proxy.gateway.snapshot import Snapshot
from proxy.gateway.spec import RouteSpec
from proxy.gateway.subprotocols import offered
from proxy.gateway.vocabulary import RedisKeys

# Never echoed back: the explanation names the key by its prefix only.
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})


@dataclass(slots=True)
class ExplainRequest:
    method: str
    url: str
    headers: Sequence[tuple[str, str]] = ()
    client_ip: str = "127.0.0.1"
    protocol: str = "http"
    as_key: str = ""  # act as this key (by prefix) instead of checking credentials
    as_partner: str = ""  # act as this partner (JWT caller) instead of checking credentials


@dataclass(slots=True)
class MatcherCheck:
    matcher: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"matcher": self.matcher, "ok": self.ok, "detail": self.detail}


@dataclass(slots=True)
class Verdict:
    status: int = 200
    code: str = "forwarded"
    message: str = ""
    phase: str = "forward"


# -- the request ---------------------------------------------------------------------------------
def request_context(request: ExplainRequest) -> RequestContext:
    """The RequestContext the gateway would build for this request: an ASGI scope, as uvicorn
    would hand it over, through the gateway's own ``RequestContext.from_scope``."""
    parts = urlsplit(request.url.strip())
    raw_headers = [
        (name.strip().lower().encode("latin-1", "replace"), value.encode("latin-1", "replace"))
        for name, value in request.headers
    ]
    if not any(name == b"host" for name, _ in raw_headers) and parts.netloc:
        raw_headers.append((b"host", parts.netloc.rpartition("@")[2].encode("latin-1", "replace")))
    raw_path = parts.path or "/"
    websocket = request.protocol == "websocket"
    scope = {
        "type": request.protocol,
        "method": "GET" if websocket else request.method.upper(),
        "scheme": parts.scheme or "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1", "replace"),
        "query_string": parts.query.encode("utf-8"),
        "headers": raw_headers,
        "client": (request.client_ip, 0),
    }
    if websocket:
        del scope["method"]
    ctx = RequestContext.from_scope(scope)
    ctx.request_id = "explain"
    return ctx


def _masked_query(query: str) -> str:
    """The query with any ``api_key`` value hidden: explanations are shown and logged."""
    if "api_key" not in query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "***" if k == "api_key" else v) for k, v in pairs], safe="*")


# -- why a route matches or not ----------------------------------------------------------------
def _host_ok(route: Route, host: str) -> bool:
    """The host index's rule (RouteTable._buckets): exact name, or a ``*.suffix`` wildcard."""
    if not route.hosts:
        return True
    return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in route.hosts)


def _matcher_detail(kind: str, matcher: FieldMatcher, values: Sequence[str] | None) -> str:
    got = (
        "***"
        if kind == "header" and matcher.name in _SECRET_HEADERS and values
        else (", ".join(repr(v) for v in values) if values else "nothing")
    )
    wanted = {"present": "present", "absent": "absent"}.get(matcher.match, f"{matcher.match} {matcher.value!r}")
    return f"{kind} {matcher.name} must be {wanted}; got {got}"


def route_checks(route: Route, ctx: RequestContext, path: str, protocol: str) -> list[MatcherCheck]:
    """Each matcher of ``route`` tested against the request, in the order the gateway tests them."""
    checks = [
        MatcherCheck(
            "protocol",
            protocol in route.protocols,
            f"{protocol} {'in' if protocol in route.protocols else 'not in'} {sorted(route.protocols)}",
        )
    ]
    host_ok = _host_ok(route, ctx.host)
    checks.append(
        MatcherCheck(
            "host",
            host_ok,
            f"{ctx.host or '(none)'} {'matches' if host_ok else 'is not among'} {list(route.hosts) or 'any'}",
        )
    )
    if route.path_type == "prefix":
        path_ok = route.path in segment_prefixes(path)
        detail = f"{path} {'starts' if path_ok else 'does not start'} with the segment prefix {route.path}"
    elif route.path_type == "exact":
        path_ok = route.match_path(path) is not None
        detail = f"{path} {'equals' if path_ok else 'differs from'} the exact path {route.path}"
    else:
        path_ok = route.match_path(path) is not None
        detail = f"{path} {'matches' if path_ok else 'does not match'} the regex {route.path}"
    checks.append(MatcherCheck("path", path_ok, detail))
    for matcher in route.header_matchers:
        values = ctx.headers.get(matcher.name)
        checks.append(
            MatcherCheck(f"header:{matcher.name}", matcher.test(values), _matcher_detail("header", matcher, values))
        )
    if route.query_matchers:
        query = parse_qs(ctx.query_string.decode("latin-1"), keep_blank_values=True)
        for matcher in route.query_matchers:
            values = query.get(matcher.name)
            checks.append(
                MatcherCheck(f"query:{matcher.name}", matcher.test(values), _matcher_detail("query", matcher, values))
            )
    method_ok = not route.methods or ctx.method in route.methods
    allowed = sorted(route.methods) if route.methods else "any method"
    checks.append(MatcherCheck("method", method_ok, f"{ctx.method} {'in' if method_ok else 'not in'} {allowed}"))
    return checks


def route_summary(route: Route) -> dict[str, Any]:
    return {
        "name": route.name,
        "id": route.id,
        "priority": route.priority,
        "path_type": route.path_type,
        "path": route.path,
        "hosts": list(route.hosts),
        "methods": sorted(route.methods),
        "protocols": sorted(route.protocols),
        "upstream": route.upstream,
    }


def nearest_misses(
    routes: Sequence[Route],
    winner: Route | None,
    ctx: RequestContext,
    path: str,
    protocol: str,
    disabled: Sequence[Route],
    limit: int,
) -> list[dict[str, Any]]:
    """The routes that came closest: fewest failed matchers, then the gateway's precedence.
    Routes that matched everything but lost to the winner on precedence count as nearest."""
    found: list[tuple[int, int, dict[str, Any]]] = []
    for route in routes:
        if route is winner:
            continue
        checks = route_checks(route, ctx, path, protocol)
        failed = [c for c in checks if not c.ok]
        entry = {**route_summary(route), "failed": [c.as_dict() for c in failed]}
        if not failed and winner is not None:
            # It would have matched: the nearest miss of all.
            entry["failed"] = [
                MatcherCheck(
                    "precedence",
                    False,
                    f"{winner.name!r} comes first (higher priority, more "
                    "specific host, exact > regex > prefix, longer path, "
                    "then name)",
                ).as_dict()
            ]
        found.append((len(failed), route.order, entry))
    for index, route in enumerate(disabled):
        failed = [c for c in route_checks(route, ctx, path, protocol) if not c.ok]
        failed.insert(0, MatcherCheck("enabled", False, "the route is disabled"))
        found.append(
            (len(failed), len(routes) + index, {**route_summary(route), "failed": [c.as_dict() for c in failed]})
        )
    found.sort(key=lambda item: (item[0], item[1]))
    return [entry for _, _, entry in found[:limit]]


# -- authentication -------------------------------------------------------------------------------
def _credential(ctx: RequestContext, policy: RoutePolicy, offered_key: str | None) -> str:
    authorization = ctx.header("authorization")
    if authorization is not None:
        value = authorization.strip().partition(" ")[2].strip()
        kind = "API key" if apikeys.looks_like_key(value) else "bearer token"
        prefix = apikeys.split(value)
        return f"{kind} in Authorization" + (f" (key {prefix})" if prefix else "")
    if ctx.header("x-api-key") is not None:
        prefix = apikeys.split(ctx.header("x-api-key") or "")
        return "API key in X-API-Key" + (f" (key {prefix})" if prefix else "")
    if policy.allow_query_key and b"api_key=" in ctx.query_string:
        return "API key in the api_key query parameter"
    if offered_key:
        return "API key in the Sec-WebSocket-Protocol header"
    return "none"


def auth_info(
    request: ExplainRequest, ctx: RequestContext, policy: RoutePolicy, admitted: bool, error: GatewayError | None
) -> dict[str, Any]:
    """What authentication needed and what it found (explain's ``auth`` section)."""
    offered_key = offered(ctx, policy.allow_query_key).key if request.protocol == "websocket" else None
    simulated = (
        f"key {request.as_key}" if request.as_key else (f"partner {request.as_partner}" if request.as_partner else None)
    )
    identity = ctx.identity
    info: dict[str, Any] = {
        "required": policy.auth,
        "product": policy.product,
        "allow_query_key": policy.allow_query_key,
        "credential": _credential(ctx, policy, offered_key),
        "simulated_as": simulated,
        "ok": admitted,
        "status": None if admitted or error is None else error.status_code,
        "code": None if admitted or error is None else error.code,
        "message": None if admitted or error is None else error.detail,
        "partner": identity.partner_slug if identity is not None else None,
        "key": identity.key_prefix if identity is not None else None,
        "plan": identity.plan_slug if identity is not None else None,
        "method": identity.method if identity is not None else None,
    }
    if policy.auth == "public":
        info["message"] = "Public route: no credentials; limits count per client IP."
    return info


def limit_entries(states: Sequence[LimitState]) -> list[dict[str, Any]]:
    return [
        {
            "name": state.rule.name,
            "kind": "quota" if state.rule.kind == "q" else "rate",
            "period": state.rule.period,
            "limit": state.rule.limit,
            "redis_key": state.key,
            "used": state.used,
            "remaining": state.remaining,
            "would_refuse": state.would_refuse,
            "reset_seconds": None if state.used is None else round(state.reset_ms / 1000, 1),
            **({"error": state.error} if state.error else {}),
        }
        for state in states
    ]


async def _admit(
    admission: Admission, ctx: RequestContext, snapshot: Snapshot, protocol: str, simulate: Simulation | None
) -> Admitted:
    try:
        return await admission.admit(ctx, snapshot, protocol=protocol, simulate=simulate)
    finally:
        await admission.authenticator.close()


# -- the whole explanation ------------------------------------------------------------------------
def explain(
    request: ExplainRequest,
    snapshot: Snapshot,
    *,
    client: Any,
    config: GatewayConfig,
    disabled: Sequence[RouteSpec] = (),
    nearest: int = 5,
) -> dict[str, Any]:
    """The explanation as plain data (the admin API's ExplainResponse documents its shape).
    ``client``: a synchronous redis-py client to read the limit counters with."""
    ctx = request_context(request)
    out: dict[str, Any] = {
        "snapshot_version": snapshot.version,
        "request": {
            "method": ctx.method,
            "host": ctx.host,
            "path": ctx.path,
            "query": _masked_query(ctx.query_string.decode("latin-1")),
            "protocol": request.protocol,
            "client_ip": ctx.client_ip,
            "headers": {k: (["***"] * len(v) if k in _SECRET_HEADERS else v) for k, v in ctx.headers.items()},
        },
        "verdict": None,
        "route": None,
        "why": [],
        "nearest": [],
        "auth": None,
        "limits": [],
        "upstream": None,
    }
    admission = Admission(
        authenticator=Authenticator(config.api_key_pepper),
        keys=RedisKeys(config.redis_prefix, cluster=is_cluster(config.redis_url)),
        client_ips=ClientAddress(config.trusted_proxies),
        via=config.via,
        peek=LimitPeek(client),
    )
    simulate = Simulation(request.as_key, request.as_partner) if request.as_key or request.as_partner else None
    admitted: Admitted | None = None
    error: GatewayError | None = None
    try:
        admitted = asyncio.run(_admit(admission, ctx, snapshot, request.protocol, simulate))
        error = admitted.refusal
    except GatewayError as exc:
        error = exc
    phase = ctx.phase if error is not None else "forward"
    verdict = Verdict(error.status_code, error.code, error.detail, phase) if error is not None else Verdict()
    if error is not None and error.status_code == 429:
        verdict.phase = "limit"
    allow = dict(error.headers).get(b"allow") if error is not None else None
    if allow:
        verdict.message += f" Allowed: {allow.decode()}."

    match = ctx.match
    try:
        path = Admission.canonical(ctx).path
    except GatewayError:
        out["verdict"] = _as_dict(verdict)
        return out
    disabled_routes = []
    for spec in disabled:
        try:
            disabled_routes.append(Route(spec))
        except ValueError:
            continue  # a disabled route that would not even compile cannot be "nearest"
    winner = match.route if match is not None else None
    out["nearest"] = nearest_misses(
        snapshot.routes.routes, winner, ctx, path, request.protocol, disabled_routes, nearest
    )
    if match is None:
        out["verdict"] = _as_dict(verdict)
        return out
    route = match.route
    upstream_path = admitted.target if admitted is not None and admitted.target else None
    out["route"] = {
        **route_summary(route),
        "params": dict(match.params),
        "tail": match.tail,
        "upstream_path": (upstream_path or "").partition("?")[0] or route.upstream_path(path, match.params, match.tail),
    }
    why = route_checks(route, ctx, path, request.protocol)
    traffic = snapshot.traffic.get(route.name)
    if traffic is not None and traffic.ip_rules is not None:
        permitted = traffic.ip_rules.permits(ctx.client_ip)
        why.append(
            MatcherCheck(
                "client_ip",
                permitted,
                f"{ctx.client_ip} {'passes' if permitted else 'fails'} the route's IP allow/deny rules",
            )
        )
    out["why"] = [c.as_dict() for c in why]
    if phase == "match":
        out["verdict"] = _as_dict(verdict)
        return out
    out["auth"] = auth_info(request, ctx, route.policy, phase != "authenticate", error)
    if admitted is not None:
        out["limits"] = limit_entries(admitted.limits)
    out["upstream"] = _upstream(snapshot, route, ctx, admitted)
    if error is None:
        verdict.message = f"Would forward to {out['upstream']['target']}{out['route']['upstream_path']}"
    out["verdict"] = _as_dict(verdict)
    return out


def _upstream(snapshot: Snapshot, route: Route, ctx: RequestContext, admitted: Admitted | None) -> dict[str, Any]:
    """The upstream admission chose (or, when it stopped before choosing, would choose)."""
    traffic = snapshot.traffic.get(route.name)
    upstream = admitted.upstream if admitted is not None else None
    if upstream is None and traffic is not None:
        try:
            upstream = choose_upstream(snapshot, traffic, route, ctx, ctx.identity)
        except GatewayError:
            upstream = None
    if upstream is None:
        name = route.upstream
        return {"name": name, "target": None, "url": None, "targets": [], "note": "no routable upstream"}
    chosen_by = "an upstream rule of the route" if upstream.name != route.upstream else "the route's upstream"
    total = sum(t.weight for t in upstream.targets) or 1
    # A freshly compiled balancer: the first of its schedule (or the hash's choice for this caller).
    target = upstream.pick(admitted.hash_key if admitted is not None else None)
    request_target = admitted.target if admitted is not None else ""
    path, _, query = request_target.partition("?")
    url = f"{target.url}{path}" + (f"?{_masked_query(query)}" if query else "") if target is not None else None
    return {
        "name": upstream.name,
        "target": target.url if target is not None else None,
        "url": url,
        "targets": [{"url": t.url, "weight": t.weight, "share": round(t.weight / total, 3)} for t in upstream.targets],
        "note": f"Chosen by {chosen_by}. Weighted round robin: each gateway instance keeps its own position in "
        "the schedule (and skips ejected targets), so the target of one request depends on the instance; this "
        "is the schedule's first target.",
    }


def _as_dict(verdict: Verdict) -> dict[str, Any]:
    return {
        "status": verdict.status,
        "code": verdict.code,
        "message": verdict.message,
        "phase": verdict.phase,
        "would_forward": verdict.code == "forwarded",
    }
