"""Admission: the one place a request is admitted, whatever its entry point.

    match → client address and IP rules → CORS → authenticate → limit → upstream request

``Admission.admit`` runs these phases in this order, one call each, and returns an ``Admitted``
(the route, the caller, the upstream and the exact request target and headers to send it) or
raises the ``GatewayError`` that refuses the request. Three callers, one decision:

- the HTTP handler (app.py), which then forwards (upstream.py) or answers from the cache;
- the WebSocket handshake (app.py), which then opens the relay (websocket.py);
- explain (proxy/explain.py), a dry run: a ``LimitPeek`` reads the counters instead of the
  limiter counting them, and a simulated identity may stand in for credentials.

A rule that decides whether or where a request goes belongs in one of the phases below, never in
a caller, so it holds for every protocol at once (Kong runs one access phase for all of them).
``ctx.phase`` names the phase in progress, so a refusal can say where it happened.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from multidict import CIMultiDict

from proxy.gateway import tracing
from proxy.gateway.auth import Authenticator, Identity
from proxy.gateway.balancer import Upstream
from proxy.gateway.cache import Cache, CacheSlot, Entry
from proxy.gateway.canonical import Canonical, canonicalise
from proxy.gateway.context import RequestContext
from proxy.gateway.cors import preflight_method
from proxy.gateway.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    ServiceUnavailable,
    TooManyRequests,
)
from proxy.gateway.headers import (
    GATEWAY_OWNED,
    HANDSHAKE,
    HOP_BY_HOP,
    PROXY_CLAIMS,
    URL_OVERRIDES,
    connection_tokens,
    forwarded_proto,
)
from proxy.gateway.iprules import ClientAddress
from proxy.gateway.policy import DEFAULT, TrafficPolicy, hash_value
from proxy.gateway.ratelimit import Check, Limiter, LimitPeek, LimitState, current_quota_window
from proxy.gateway.routing import Route, RouteMatch
from proxy.gateway.snapshot import Snapshot
from proxy.gateway.subprotocols import Offer, offered
from proxy.gateway.vocabulary import RedisKeys, ip_caller, last_used_field, plan_subject, usage_prefix

# Characters left as they are when a decoded path is encoded again for the upstream.
PATH_SAFE = "/:@!$&'()*+,;=-._~"
# Request headers never forwarded (Admission.upstream_headers); proxy claims travel on only from
# a trusted proxy.
_DROP_FROM_TRUSTED = HOP_BY_HOP | GATEWAY_OWNED | HANDSHAKE | URL_OVERRIDES
_DROP = _DROP_FROM_TRUSTED | PROXY_CLAIMS


@dataclass(frozen=True, slots=True)
class Simulation:
    """Explain's stand-in for credentials: act as this key (by prefix) or partner (by slug)."""

    key_prefix: str = ""
    partner: str = ""


@dataclass(slots=True)
class Admitted:
    route: Route
    traffic: TrafficPolicy
    identity: Identity | None = None
    # The upstream pool; None for a CORS preflight (the gateway answers it) and a cache hit.
    upstream: Upstream | None = None
    # Path and query exactly as the upstream receives them.
    target: str = ""
    # Request headers for the upstream. Host is in them only when the route preserves it;
    # otherwise it is each attempt's target (upstream.py) or the WebSocket URL's.
    headers: CIMultiDict[str] | None = None
    preserve_host: bool = False
    hash_key: str | None = None
    # WebSocket: the subprotocols the client offered (subprotocols.py).
    offer: Offer | None = None
    preflight: list[tuple[bytes, bytes]] | None = None
    cache: CacheSlot | None = None
    hit: Entry | None = None
    # Dry run only: each limit as it stands, and the refusal counting would have caused.
    limits: Sequence[LimitState] = ()
    refusal: GatewayError | None = None


class Admission:
    def __init__(
        self,
        *,
        authenticator: Authenticator,
        keys: RedisKeys,
        client_ips: ClientAddress,
        via: str,
        limiter: Limiter | None = None,
        peek: LimitPeek | None = None,
        cache: Cache | None = None,
    ) -> None:
        """Give ``limiter`` to admit for real, or ``peek`` for a dry run (explain)."""
        if (limiter is None) == (peek is None):
            raise ValueError("Admission needs a limiter or, for a dry run, a LimitPeek")
        self.authenticator = authenticator
        self.keys = keys
        self.client_ips = client_ips
        self.via = f"1.1 {via}"
        self.limiter = limiter
        self.peek = peek
        self.cache = cache
        self.checks = Checks(keys)

    async def admit(
        self,
        ctx: RequestContext,
        snapshot: Snapshot | None,
        *,
        protocol: str = "http",
        simulate: Simulation | None = None,
    ) -> Admitted:
        if snapshot is None:
            raise ServiceUnavailable("The gateway has no configuration yet.", code="not_ready")
        ctx.phase = "match"
        check_request_form(ctx)
        canonical = self.canonical(ctx)
        self.client_address(ctx)
        preflight = preflight_method(ctx) if protocol == "http" else None
        match, traffic = self.match(snapshot, ctx, canonical.path, protocol, preflight)
        route = match.route
        check_path_form(canonical, route)
        check_address(ctx, traffic)
        admitted = Admitted(route, traffic)
        if traffic.cors is not None and protocol == "http":
            if preflight is not None:
                admitted.preflight = traffic.cors.preflight(ctx, preflight)
                return admitted
            ctx.response_headers.extend(traffic.cors.response_headers(ctx))
        elif traffic.cors is not None:
            # Browsers send Origin on every handshake and apply no CORS to WebSockets: the route's
            # origins are checked here, or any site could open a socket with the user's cookies
            # (cross-site WebSocket hijacking). Clients that are not browsers send no Origin.
            origin = ctx.header("origin")
            if origin is not None and not traffic.cors.allows(origin):
                raise Forbidden("This origin may not open WebSockets on this API.", code="cors_origin_not_allowed")

        ctx.phase = "authenticate"
        offered_key = None
        if protocol == "websocket":
            admitted.offer = offered(ctx, route.policy.allow_query_key)
            offered_key = admitted.offer.key
        identity = admitted.identity = await self.authenticate(ctx, snapshot, route, offered_key, simulate)

        ctx.phase = "limit"
        admitted.target = upstream_target(ctx, match, canonical)
        # The cache lookup goes out now and is awaited after the limiter's call: both round trips
        # are in flight together (cache.py).
        if protocol == "http" and traffic.cache is not None and self.cache is not None:
            admitted.cache = self.cache.begin(
                ctx,
                traffic.cache,
                str(route.id or route.name),
                holder=f"{identity.partner.slug}|{identity.subject}" if identity is not None else "-",
                scheme=self.scheme(ctx),
                target=admitted.target,
            )
        check = self.checks.get(snapshot, identity, route, ctx.client_ip, time.time())
        if self.limiter is not None:
            if check is not NO_LIMITS:  # nothing to limit or count: no limiter coroutine either
                await self.limiter.check(ctx, check)
        else:
            assert self.peek is not None
            admitted.limits = self.peek.read(check, time.time())
            admitted.refusal = dry_run_refusal(admitted.limits)
        if admitted.cache is not None:
            admitted.hit = await admitted.cache.entry()
            if admitted.hit is not None:
                return admitted

        ctx.phase = "forward"
        admitted.upstream = choose_upstream(snapshot, traffic, route, ctx, identity)
        admitted.hash_key = hash_value(admitted.upstream, ctx)
        admitted.preserve_host = route.preserve_host and "host" in ctx.headers
        admitted.headers = self.upstream_headers(ctx, admitted.preserve_host, traffic)
        return admitted

    # -- match --------------------------------------------------------------------------------
    @staticmethod
    def canonical(ctx: RequestContext) -> Canonical:
        """The one form of the path that is matched, authorised and forwarded (canonical.py),
        from the raw request target; servers that give no raw path get theirs re-encoded."""
        raw = ctx.raw_path.decode("latin-1") if ctx.raw_path else quote(ctx.path, safe=PATH_SAFE)
        return canonicalise(raw)

    def client_address(self, ctx: RequestContext) -> None:
        """Behind trusted proxies, the client is in X-Forwarded-For (iprules.ClientAddress)."""
        if self.client_ips:
            peer = ctx.client_ip
            client = self.client_ips.resolve(peer, ctx.headers.get("x-forwarded-for"))
            if client != peer:
                ctx.peer_ip = peer
                ctx.client_ip = client

    @staticmethod
    def match(
        snapshot: Snapshot, ctx: RequestContext, path: str, protocol: str, preflight: str | None
    ) -> tuple[RouteMatch, TrafficPolicy]:
        """The route and its traffic policy. A CORS preflight is matched as the request it
        announces, and answered by that route if it configures CORS; otherwise it is an
        ordinary OPTIONS request."""
        routes = snapshot.routes
        if preflight is not None:
            try:
                match = routes.match(
                    host=ctx.host, path=path, method=preflight, headers=ctx.headers, query_string=ctx.query_string
                )
            except GatewayError:
                pass
            else:
                traffic = snapshot.traffic.get(match.route.name, DEFAULT)
                if traffic.cors is not None:
                    ctx.match = match
                    return match, traffic
        match = routes.match(
            host=ctx.host,
            path=path,
            method=ctx.method,
            headers=ctx.headers,
            query_string=ctx.query_string,
            protocol=protocol,
        )
        ctx.match = match
        return match, snapshot.traffic.get(match.route.name, DEFAULT)

    def trusted_peer(self, ctx: RequestContext) -> bool:
        """Whether the connection came from a proxy in GATEWAY_TRUSTED_PROXIES."""
        return bool(self.client_ips) and self.client_ips.is_trusted(ctx.peer_ip or ctx.client_ip)

    def scheme(self, ctx: RequestContext) -> str:
        """The scheme the client used: ours, or what a trusted proxy says it received."""
        return forwarded_proto(ctx.header("x-forwarded-proto"), ctx.scheme) if self.trusted_peer(ctx) else ctx.scheme

    # -- authenticate -------------------------------------------------------------------------
    async def authenticate(
        self,
        ctx: RequestContext,
        snapshot: Snapshot,
        route: Route,
        offered_key: str | None,
        simulate: Simulation | None,
    ) -> Identity | None:
        """Who calls, and may they call from there."""
        policy = route.policy
        if simulate is not None and policy.auth != "public":
            identity: Identity | None = self.authenticator.simulate(
                snapshot.auth, policy, key_prefix=simulate.key_prefix, partner=simulate.partner
            )
        else:
            identity = await self.authenticator.authenticate(ctx, policy, snapshot.auth, offered_key)
        ctx.identity = identity
        if identity is not None:
            ctx.upstream_headers = identity_headers(identity)
            partner_rules = snapshot.partner_ips.get(identity.partner.id)
            if partner_rules is not None and not partner_rules.permits(ctx.client_ip):
                raise Forbidden("Requests from this address are not allowed for this partner.", code="ip_denied")
        return identity

    # -- the upstream request -----------------------------------------------------------------
    def upstream_headers(self, ctx: RequestContext, preserve_host: bool, traffic: TrafficPolicy) -> CIMultiDict[str]:
        """The client's headers less hop-by-hop, handshake, gateway-owned and URL-override ones,
        proxy claims unless a trusted proxy made them, names with "_" (nginx's default: a server
        that maps "_" to "-" would read ``X_Partner_ID`` as the gateway's header) and a consumed
        key; then the route's transform; then the gateway's own headers, which always win."""
        trusted = self.trusted_peer(ctx)
        # The fixed part of the set is built once (module level); a set of its own only when
        # the request adds names (a Connection header's tokens, a consumed key header).
        drop: frozenset[str] | set[str] = _DROP_FROM_TRUSTED if trusted else _DROP
        if "connection" in ctx.headers:
            drop = drop | connection_tokens(ctx.headers)
        if ctx.consumed_header:
            drop = drop | {ctx.consumed_header}
        out: CIMultiDict[str] = CIMultiDict()
        for raw_name, raw_value in ctx.raw_headers:
            name = raw_name.decode("latin-1").lower()
            if name not in drop and "_" not in name:
                out.add(name, raw_value.decode("latin-1"))
        if traffic.request_transform is not None:
            traffic.request_transform.apply_request(out)
        if "content-length" in ctx.headers and "transfer-encoding" not in ctx.headers:
            out["Content-Length"] = ctx.headers["content-length"][0]
        original_host = ctx.header("host") or ""
        if preserve_host:
            out["Host"] = original_host
        # The hop that reached us is the peer; ctx.client_ip may be a client behind trusted proxies.
        hop = ctx.peer_ip or ctx.client_ip
        forwarded_for = out.get("X-Forwarded-For")
        out["X-Forwarded-For"] = f"{forwarded_for}, {hop}" if forwarded_for else hop
        out["X-Real-IP"] = ctx.client_ip
        out["X-Forwarded-Proto"] = self.scheme(ctx)
        if original_host:
            out["X-Forwarded-Host"] = original_host
        out["Via"] = self.via
        out["X-Request-ID"] = ctx.request_id
        if not ctx.traceparent:  # the gateway's span is the upstream's parent
            ctx.traceparent = tracing.start_trace(ctx)
        out[tracing.HEADER] = ctx.traceparent
        for name, value in ctx.upstream_headers:
            out[name] = value
        return out


def check_request_form(ctx: RequestContext) -> None:
    """Requests no API has a use for, and that only confuse what is behind the gateway."""
    if ctx.http_version not in ("1.0", "1.1", "2", "3"):
        raise BadRequest(f"HTTP/{ctx.http_version} is not served.", code="bad_version")
    if ctx.method in ("TRACE", "TRACK", "CONNECT"):
        # TRACE echoes the request, credentials included (cross-site tracing); CONNECT tunnels.
        raise MethodNotAllowed(f"{ctx.method} is not served.")
    if len(ctx.headers.get("host", ())) > 1:
        raise BadRequest("The request has more than one Host header.", code="duplicate_host")


def check_path_form(canonical: Canonical, route: Route) -> None:
    """What the canonical form flags, refused unless the route takes it: an encoded slash or ";"
    parameters would reach an upstream that may read them as another path."""
    if canonical.encoded_slash and route.encoded_slashes == "reject":
        raise BadRequest(
            "The request path contains an encoded slash (%2F), which this API does not accept.",
            code="encoded_slash",
        )
    if canonical.parameters and not route.path_parameters:
        raise BadRequest("The request path contains ';' parameters, which this API does not accept.", code="bad_path")


def check_address(ctx: RequestContext, traffic: TrafficPolicy) -> None:
    if traffic.ip_rules is not None and not traffic.ip_rules.permits(ctx.client_ip):
        raise Forbidden("Requests from this address are not allowed.", code="ip_denied")


def identity_headers(identity: Identity) -> list[tuple[str, str]]:
    """Who is calling, for the upstream. Client-sent copies were dropped (headers.GATEWAY_OWNED)."""
    headers = [("X-Partner-ID", identity.partner.slug)]
    if identity.key is not None:
        headers.append(("X-Key-ID", identity.key.prefix))
    if identity.plan is not None:
        headers.append(("X-Plan", identity.plan.slug))
    return headers


# The check of a request nothing limits or counts; shared (no Check is changed once built).
NO_LIMITS = Check([], [], "", "")


class Checks:
    """The Check of each credential on each route, built once an hour instead of once a request.

    Building one formats every limit key, the usage prefix and the last-used field: 5 % of a
    full-path request's instructions (callgrind, ``bench.pathcost e``). What it holds is fixed by the
    snapshot's partner, key, plan and route and by the UTC hour: usage fields are hourly and
    quota windows (UTC days and months) begin on the hour. So the table is emptied when the
    snapshot or the hour changes, and when it is full. Anonymous callers are not kept (their
    keys carry the client's address: one entry per address would only churn).
    """

    MAX_ENTRIES = 50_000

    def __init__(self, keys: RedisKeys) -> None:
        self.keys = keys
        # ids of (partner, key, plan, route), product → the Check and the objects themselves: held,
        # so no id is reused while its entry lives, and compared, so a look-alike never matches.
        self._table: dict[tuple[int, int, int, int, str], tuple[Check, tuple[object, ...]]] = {}
        self._hour = -1
        self._snapshot: Snapshot | None = None

    def get(self, snapshot: Snapshot, identity: Identity | None, route: Route, client_ip: str, now: float) -> Check:
        if identity is None:
            return limits_for(self.keys, identity, route, client_ip, now)
        hour = int(now // 3600)
        table = self._table
        if hour != self._hour or snapshot is not self._snapshot or len(table) >= self.MAX_ENTRIES:
            table.clear()
            self._hour, self._snapshot = hour, snapshot
        owners = (identity.partner, identity.key, identity.plan, route)
        key = (id(owners[0]), id(owners[1]), id(owners[2]), id(route), identity.product)
        entry = table.get(key)
        if entry is not None and all(a is b for a, b in zip(entry[1], owners, strict=True)):
            return entry[0]
        check = limits_for(self.keys, identity, route, client_ip, now)
        table[key] = (check, owners)
        return check


def limits_for(keys: RedisKeys, identity: Identity | None, route: Route, client_ip: str, now: float) -> Check:
    """The limits and usage counter of one request (ratelimit.lua takes them in one call). All its
    keys share one hash tag (vocabulary.RedisKeys): the partner's, or the client IP's when anonymous."""
    policy = route.policy
    if identity is None and not policy.rules:
        return NO_LIMITS  # an anonymous caller on a route without limits: counted nowhere
    route_id = route.id if route.id is not None else route.name
    if identity is None:
        caller = ip_caller(client_ip)
        tag = keys.ip_tag(client_ip)
        ip_keys = [keys.route_rate(tag, route_id, caller, r.period) for r in policy.rules]
        return Check(ip_keys, list(policy.rules), "", "", tag)
    key, partner, plan = identity.key, identity.partner, identity.plan
    tag = keys.partner_tag(partner.id)
    caller = plan_subject("key", partner_id=partner.id, key_id=key.id if key is not None else None)
    subject = plan_subject(plan.scope, partner_id=partner.id, key_id=key.id if key else None) if plan else caller
    product = identity.product or "-"
    limit_keys: list[str] = []
    rules = []
    ends: dict[str, int] | None = None
    for rule in plan.rules if plan is not None else ():
        if rule.kind == "r":
            limit_keys.append(keys.rate(tag, subject, product, rule.period))
        else:
            window, end = current_quota_window(rule.period, now)
            limit_keys.append(keys.quota(tag, subject, product, rule.period, window))
            if ends is None:
                ends = {}
            ends[limit_keys[-1]] = int(end * 1000)
        rules.append(rule)
    for rule in policy.rules:
        limit_keys.append(keys.route_rate(tag, route_id, caller, rule.period))
        rules.append(rule)
    usage = usage_prefix(int(now // 3600), partner.id, key.id if key else None, route.id, identity.product)
    return Check(limit_keys, rules, usage, last_used_field(key.id) if key is not None else "", tag, ends)


def dry_run_refusal(states: Sequence[LimitState]) -> GatewayError | None:
    refused = next((s for s in states if s.would_refuse), None)
    if refused is None:
        return None
    return TooManyRequests(f"Limit {refused.rule.name} ({refused.rule.limit}) is used up.", code=refused.rule.code)


def choose_upstream(
    snapshot: Snapshot, traffic: TrafficPolicy, route: Route, ctx: RequestContext, identity: Identity | None
) -> Upstream:
    partner = identity.partner.slug if identity is not None else None
    name = traffic.upstream_for(route.upstream, ctx, partner) if traffic.upstream_rules else route.upstream
    upstream = snapshot.upstreams.get(name) if name else None
    if upstream is None or not upstream.routable:
        raise ServiceUnavailable("The API has no upstream target configured.", code="no_upstream")
    return upstream


def upstream_target(ctx: RequestContext, match: RouteMatch, canonical: Canonical) -> str:
    """The request target the upstream receives: the route's rewrite or stripped prefix, else
    the canonical path that was matched (canonical.py), plus the query less any consumed key."""
    target = match.route.upstream_path(canonical.path, match.params, match.tail)
    if target is None:
        target = canonical.target
    if ctx.query_string:
        target += "?" + ctx.query_string.decode("latin-1")
    return target
