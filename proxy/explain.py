"""Explain a request: what the gateway would do with it, and why, without doing it.

The verdict comes from the data plane's own code on a snapshot compiled from the database
(``Snapshot.compile(build_snapshot(), version)``): ``RouteTable.match`` picks the route, the
``Authenticator`` checks the credentials, ``limit_check`` names the limits and their Redis keys,
the upstream's balancer picks the target. Nothing is forwarded and no quota is consumed: the
limit counters are only read (``remaining()``, the read half of ratelimit.lua).

On top of the verdict, a diagnosis that the gateway itself never needs: every route's matchers
tested one by one (``route_checks``), so the answer can say why the winner matched and, for the
nearest routes that did not, which matcher failed. The checks only report; they decide nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis

from proxy.gateway import apikeys
from proxy.gateway.app import limit_check
from proxy.gateway.auth import Authenticator, Identity, RoutePolicy
from proxy.gateway.context import RequestContext
from proxy.gateway.errors import Forbidden, GatewayError, Unauthorized
from proxy.gateway.ratelimit import RATE_PERIODS, Limiter, Rule, quota_window
from proxy.gateway.redis_keys import RedisKeys
from proxy.gateway.routing import FieldMatcher, Route, RouteMatch, resolve_dot_segments, segment_prefixes, split_host
from proxy.gateway.snapshot import Snapshot
from proxy.gateway.websocket import offered_subprotocols

_PATH_SAFE = "/:@!$&'()*+,;=-._~"
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
class Check:
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
    """The RequestContext the gateway would build for this request (see Gateway.context)."""
    parts = urlsplit(request.url.strip())
    headers: dict[str, list[str]] = {}
    raw_headers: list[tuple[bytes, bytes]] = []
    for name, value in request.headers:
        headers.setdefault(name.strip().lower(), []).append(value)
        raw_headers.append((name.strip().lower().encode("latin-1", "replace"), value.encode("latin-1", "replace")))
    if "host" not in headers and parts.netloc:
        host_value = parts.netloc.rpartition("@")[2]
        headers["host"] = [host_value]
        raw_headers.append((b"host", host_value.encode("latin-1", "replace")))
    raw_path = parts.path or "/"
    return RequestContext(
        method="GET" if request.protocol == "websocket" else request.method.upper(),
        path=unquote(raw_path),
        raw_path=raw_path.encode("latin-1", "replace"),
        query_string=parts.query.encode("utf-8"),
        raw_headers=raw_headers,
        headers=headers,
        host=split_host(headers["host"][0]) if headers.get("host") else "",
        scheme={"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme or "http"),
        client_ip=request.client_ip,
        request_id="explain",
        started=time.perf_counter(),
    )


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


def route_checks(route: Route, ctx: RequestContext, path: str, protocol: str) -> list[Check]:
    """Each matcher of ``route`` tested against the request, in the order the gateway tests them."""
    checks = [
        Check(
            "protocol",
            protocol in route.protocols,
            f"{protocol} {'in' if protocol in route.protocols else 'not in'} {sorted(route.protocols)}",
        )
    ]
    host_ok = _host_ok(route, ctx.host)
    checks.append(
        Check(
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
    checks.append(Check("path", path_ok, detail))
    for matcher in route.header_matchers:
        values = ctx.headers.get(matcher.name)
        checks.append(Check(f"header:{matcher.name}", matcher.test(values), _matcher_detail("header", matcher, values)))
    if route.query_matchers:
        query = parse_qs(ctx.query_string.decode("latin-1"), keep_blank_values=True)
        for matcher in route.query_matchers:
            values = query.get(matcher.name)
            checks.append(
                Check(f"query:{matcher.name}", matcher.test(values), _matcher_detail("query", matcher, values))
            )
    method_ok = not route.methods or ctx.method in route.methods
    allowed = sorted(route.methods) if route.methods else "any method"
    checks.append(Check("method", method_ok, f"{ctx.method} {'in' if method_ok else 'not in'} {allowed}"))
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
                Check(
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
        failed.insert(0, Check("enabled", False, "the route is disabled"))
        found.append(
            (len(failed), len(routes) + index, {**route_summary(route), "failed": [c.as_dict() for c in failed]})
        )
    found.sort(key=lambda item: (item[0], item[1]))
    return [entry for _, _, entry in found[:limit]]


# -- limits, read without counting ----------------------------------------------------------------
def remaining(client: redis.Redis, key: str, rule: Rule, now: float) -> dict[str, Any]:
    """What ratelimit.lua would compute for ``rule`` before counting this request: its current
    count, what remains, and when there is room again. Reads only (expired rate buckets are
    skipped, not deleted)."""
    now_ms = int(now * 1000)
    if rule.kind == "r":
        window, bucket_ms = RATE_PERIODS[rule.period]
        oldest_live = now_ms // bucket_ms - window // bucket_ms + 1
        raw = cast(dict[bytes, bytes], client.hgetall(key))
        live = sorted((int(i), int(c)) for i, c in raw.items() if int(i) >= oldest_live)
        count = sum(c for _, c in live)
        reset_ms = (live[0][0] + window // bucket_ms) * bucket_ms - now_ms if live else window
        need, freed = count + 1 - rule.limit, 0
        for index, used in live:
            freed += used
            if need > 0 and freed >= need:
                reset_ms = (index + window // bucket_ms) * bucket_ms - now_ms
                break
    else:
        count = int(cast(bytes | None, client.get(key)) or 0)
        reset_ms = int(quota_window(rule.period, now)[1] * 1000) - now_ms
    return {
        "used": count,
        "remaining": max(0, rule.limit - count),
        "would_refuse": count >= rule.limit,
        "reset_seconds": round(max(0, reset_ms) / 1000, 1),
    }


def limits(
    client: redis.Redis, keys: RedisKeys, identity: Identity | None, match: RouteMatch, ctx: RequestContext
) -> list[dict[str, Any]]:
    # limit_check only uses the limiter's key names; this limiter never talks to Redis.
    limiter = Limiter(cast(Any, None), keys)
    check = limit_check(limiter, identity, match.route, ctx)
    now = time.time()
    out = []
    for key, rule in zip(check.keys, check.rules, strict=True):
        entry: dict[str, Any] = {
            "name": rule.name,
            "kind": "quota" if rule.kind == "q" else "rate",
            "period": rule.period,
            "limit": rule.limit,
            "redis_key": key,
        }
        try:
            entry.update(remaining(client, key, rule, now))
        except (redis.RedisError, OSError) as exc:
            entry.update(
                {
                    "used": None,
                    "remaining": None,
                    "would_refuse": None,
                    "reset_seconds": None,
                    "error": f"Redis unreachable: {type(exc).__name__}",
                }
            )
        out.append(entry)
    return out


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


def _simulated(request: ExplainRequest, policy: RoutePolicy, snapshot: Snapshot) -> Identity:
    """The identity of a key (by prefix) or partner, as if its credentials had been sent: the
    same authorisation (partner status, key products, subscription) without the secret."""
    authenticator = Authenticator(b"")
    index = snapshot.auth
    if request.as_key:
        key = index.keys.get(request.as_key)
        if key is None:
            raise Unauthorized(f"No active key with prefix {request.as_key!r} (revoked keys are unknown).")
        if key.expires is not None and key.expires <= time.time():
            raise Forbidden("The API key has expired.", code="key_expired")
        partner = index.partners.get(key.partner_id)
        if partner is None:
            raise Unauthorized("The API key is not valid.")
        # The gateway's own authorisation step, given the identity instead of its proof.
        return authenticator._authorize(partner, key, "key", policy, index)
    partner = index.partners_by_slug.get(request.as_partner)
    if partner is None:
        raise Forbidden(f"No partner {request.as_partner!r}.", code="unknown_partner")
    return authenticator._authorize(partner, None, "jwt", policy, index)


def authenticate(
    request: ExplainRequest,
    ctx: RequestContext,
    policy: RoutePolicy,
    snapshot: Snapshot,
    pepper: bytes,
    info: dict[str, Any],
) -> Identity | None:
    """The caller's identity (None on public routes); fills ``info``. Raises the gateway's 401/403."""
    offered_key = offered_subprotocols(ctx, policy.allow_query_key)[1] if request.protocol == "websocket" else None
    simulated = (
        f"key {request.as_key}" if request.as_key else (f"partner {request.as_partner}" if request.as_partner else None)
    )
    info.update(
        {
            "required": policy.auth,
            "product": policy.product,
            "allow_query_key": policy.allow_query_key,
            "credential": _credential(ctx, policy, offered_key),
            "simulated_as": simulated,
            "ok": True,
            "status": None,
            "code": None,
            "message": None,
            "partner": None,
            "key": None,
            "plan": None,
            "method": None,
        }
    )
    if policy.auth == "public":
        info["message"] = "Public route: no credentials; limits count per client IP."
        return None
    identity: Identity | None
    if simulated:
        identity = _simulated(request, policy, snapshot)
    else:
        identity = asyncio.run(_authenticate(ctx, policy, snapshot, pepper, offered_key))
    if identity is not None:
        info.update(
            {
                "partner": identity.partner_slug,
                "key": identity.key_prefix,
                "plan": identity.plan_slug,
                "method": identity.method,
            }
        )
    return identity


async def _authenticate(
    ctx: RequestContext, policy: RoutePolicy, snapshot: Snapshot, pepper: bytes, offered_key: str | None
) -> Identity | None:
    authenticator = Authenticator(pepper)
    try:
        return await authenticator.authenticate(ctx, policy, snapshot.auth, offered_key)
    finally:
        await authenticator.close()


# -- the whole explanation ------------------------------------------------------------------------
def explain(
    request: ExplainRequest,
    snapshot: Snapshot,
    *,
    client: redis.Redis,
    keys: RedisKeys,
    pepper: bytes,
    disabled: Sequence[Mapping[str, Any]] = (),
    nearest: int = 5,
) -> dict[str, Any]:
    """The explanation as plain data (the admin API's ExplainResponse documents its shape)."""
    ctx = request_context(request)
    out: dict[str, Any] = {
        "snapshot_version": snapshot.version,
        "request": {
            "method": ctx.method,
            "host": ctx.host,
            "path": ctx.path,
            "query": ctx.query_string.decode("latin-1"),
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
    verdict = Verdict()
    try:
        if not ctx.path.startswith("/"):
            raise GatewayError("The request target must be an absolute path.", code="bad_request")
        path = resolve_dot_segments(ctx.path)
    except GatewayError as exc:
        out["verdict"] = _verdict(exc, "match")
        return out
    disabled_routes = []
    for spec in disabled:
        try:
            disabled_routes.append(Route(spec))
        except ValueError:
            continue  # a disabled route that would not even compile cannot be "nearest"
    match: RouteMatch | None = None
    try:
        match = snapshot.routes.match(
            host=ctx.host,
            path=path,
            method=ctx.method,
            headers=ctx.headers,
            query_string=ctx.query_string,
            protocol=request.protocol,
        )
    except GatewayError as exc:
        verdict = _verdict_obj(exc, "match")
        allow = dict(exc.headers).get(b"allow")
        if allow:
            verdict.message += f" Allowed: {allow.decode()}."
    winner = match.route if match is not None else None
    out["nearest"] = nearest_misses(
        snapshot.routes.routes, winner, ctx, path, request.protocol, disabled_routes, nearest
    )
    if match is None:
        out["verdict"] = _as_dict(verdict)
        return out
    route = match.route
    upstream_path = route.upstream_path(path, match.params, match.tail)
    if upstream_path is None:
        upstream_path = ctx.raw_path.decode("latin-1") if path == ctx.path else quote(path, safe=_PATH_SAFE)
    out["route"] = {
        **route_summary(route),
        "params": dict(match.params),
        "tail": match.tail,
        "upstream_path": upstream_path,
    }
    why = route_checks(route, ctx, path, request.protocol)
    traffic = _traffic(snapshot, route)
    ip_rules = getattr(traffic, "ip_rules", None)
    if ip_rules is not None:
        permitted = bool(ip_rules.permits(ctx.client_ip))
        why.append(
            Check(
                "client_ip",
                permitted,
                f"{ctx.client_ip} {'passes' if permitted else 'fails'} the route's IP allow/deny rules",
            )
        )
    out["why"] = [c.as_dict() for c in why]
    if ip_rules is not None and not why[-1].ok:
        out["verdict"] = _as_dict(Verdict(403, "ip_denied", "Requests from this address are not allowed.", "match"))
        return out

    out["auth"] = {}
    identity: Identity | None
    try:
        identity = authenticate(request, ctx, route.policy, snapshot, pepper, out["auth"])
        partner_rules = getattr(snapshot, "partner_ips", {}).get(identity.partner.id) if identity else None
        if partner_rules is not None and not partner_rules.permits(ctx.client_ip):
            raise Forbidden("Requests from this address are not allowed for this partner.", code="ip_denied")
    except GatewayError as exc:
        out["auth"].update({"ok": False, "status": exc.status_code, "code": exc.code, "message": exc.detail})
        out["verdict"] = _verdict(exc, "authenticate")
        out["upstream"] = _upstream(snapshot, route, upstream_path, ctx)
        return out
    ctx.identity = identity

    out["limits"] = limits(client, keys, identity, match, ctx)
    refused = next((entry for entry in out["limits"] if entry.get("would_refuse")), None)
    if refused is not None:
        code = "quota_exceeded" if refused["kind"] == "quota" else "rate_limited"
        verdict = Verdict(429, code, f"Limit {refused['name']} ({refused['limit']}) is used up.", "limit")
    out["upstream"] = _upstream(snapshot, route, upstream_path, ctx)
    if refused is None and out["upstream"]["target"] is None:
        verdict = Verdict(503, "no_upstream", "The API has no upstream target configured.", "forward")
    elif refused is None:
        verdict.message = f"Would forward to {out['upstream']['target']}{upstream_path}"
    out["verdict"] = _as_dict(verdict)
    return out


def _traffic(snapshot: Snapshot, route: Route) -> Any:
    """The route's traffic policy (upstream rules, IP rules), where the gateway has them."""
    policies = getattr(snapshot, "traffic", None)
    return policies.get(route.name) if policies else None


def _upstream(snapshot: Snapshot, route: Route, upstream_path: str, ctx: RequestContext) -> dict[str, Any]:
    name, chosen_by = route.upstream, "the route's upstream"
    traffic = _traffic(snapshot, route)
    if traffic is not None and getattr(traffic, "upstream_rules", None):
        partner = ctx.identity.partner.slug if ctx.identity is not None else None
        name = traffic.upstream_for(route.upstream, ctx, partner)
        if name != route.upstream:
            chosen_by = "an upstream rule of the route"
    upstream = snapshot.upstreams.get(name) if name else None
    if upstream is None:
        return {"name": name, "target": None, "url": None, "targets": [], "note": "unknown upstream"}
    total = sum(t.weight for t in upstream.targets) or 1
    # A freshly compiled balancer: the first of its schedule (or the hash's choice for this caller).
    target = upstream.pick(_hash_key(upstream, ctx)) if _hash_key(upstream, ctx) is not None else upstream.pick()
    query = "?" + ctx.query_string.decode("latin-1") if ctx.query_string else ""
    return {
        "name": upstream.name,
        "target": target.url if target is not None else None,
        "url": f"{target.url}{upstream_path}{query}" if target is not None else None,
        "targets": [{"url": t.url, "weight": t.weight, "share": round(t.weight / total, 3)} for t in upstream.targets],
        "note": f"Chosen by {chosen_by}. Weighted round robin: each gateway instance keeps its own position in "
        "the schedule (and skips ejected targets), so the target of one request depends on the instance; this "
        "is the schedule's first target.",
    }


def _hash_key(upstream: Any, ctx: RequestContext) -> str | None:
    """What a consistent-hash upstream hashes for this request, where the gateway hashes."""
    try:
        from proxy.gateway import policy  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    key: str | None = policy.hash_value(upstream, ctx)
    return key


def _verdict_obj(exc: GatewayError, phase: str) -> Verdict:
    return Verdict(exc.status_code, exc.code, exc.detail, phase)


def _verdict(exc: GatewayError, phase: str) -> dict[str, Any]:
    return _as_dict(_verdict_obj(exc, phase))


def _as_dict(verdict: Verdict) -> dict[str, Any]:
    return {
        "status": verdict.status,
        "code": verdict.code,
        "message": verdict.message,
        "phase": verdict.phase,
        "would_forward": verdict.code == "forwarded",
    }
