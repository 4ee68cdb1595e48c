"""Phase 2, authenticate: who is calling, and may they call this route?

Credentials, in order: ``Authorization: Bearer <key or JWT>``, ``X-API-Key: <key>``, and
``?api_key=`` on routes that allow it (browsers and webhooks cannot always set headers; the
parameter is removed before forwarding). API keys are found by their public prefix in the
snapshot and verified by keyed hash in constant time; an unknown prefix is refused without any
I/O. JWTs (RS256/ES256) are verified with PyJWT against the issuer's JWKS, fetched in the
background and cached; the partner is the one whose slug is in the issuer's partner claim.

401 + ``WWW-Authenticate`` for missing or invalid credentials; 403 when valid credentials may
not use this route (partner pending or suspended, key expired or limited to other products,
no subscription to the route's product).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import aiohttp
import jwt

from proxy.gateway import apikeys
from proxy.gateway.context import RequestContext
from proxy.gateway.errors import Forbidden, Unauthorized
from proxy.gateway.ratelimit import Rule, quota_rules, rate_rules
from proxy.gateway.spec import RouteSpec, SnapshotData

log = logging.getLogger("apigw.auth")

AUTH_MODES = ("key", "jwt", "key_or_jwt", "public")
_DEFAULT_ALGORITHMS = ("RS256", "ES256")
# A JWKS is fetched again at most this often when a token names an unknown kid, so a flood of
# forged kids cannot turn into a flood of requests to the identity provider.
_JWKS_MIN_REFRESH = 10.0
_JWKS_MAX_AGE = 300.0


@dataclass(frozen=True, slots=True)
class Plan:
    slug: str
    scope: str  # "key" or "partner"
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Partner:
    id: int
    slug: str
    status: str
    subscriptions: Mapping[str, str]  # product slug → plan slug (active subscriptions only)


@dataclass(frozen=True, slots=True)
class Key:
    id: int
    prefix: str
    hashed: str
    partner_id: int
    products: frozenset[str] | None  # None: every product the partner subscribes to
    expires: float | None


@dataclass(frozen=True, slots=True)
class Issuer:
    name: str
    issuer: str
    jwks_url: str
    audience: str
    partner_claim: str
    algorithms: tuple[str, ...]
    leeway: int


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    auth: str
    product: str | None
    allow_query_key: bool
    rules: tuple[Rule, ...]

    @classmethod
    def from_spec(cls, spec: RouteSpec) -> RoutePolicy:
        auth = spec.get("auth") or "key"
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {', '.join(AUTH_MODES)}")
        return cls(
            auth, spec.get("product"), bool(spec.get("allow_query_key")), rate_rules("route", spec.get("limits") or {})
        )


@dataclass(frozen=True, slots=True)
class Identity:
    partner: Partner
    key: Key | None
    plan: Plan | None
    product: str
    method: str  # "key" or "jwt"
    # Who exactly holds the credential: the key, or the JWT's subject. Shared caches key on it,
    # so two users of one partner never see each other's answers.
    subject: str = ""

    @property
    def partner_slug(self) -> str:
        return self.partner.slug

    @property
    def key_prefix(self) -> str | None:
        return self.key.prefix if self.key is not None else None

    @property
    def plan_slug(self) -> str | None:
        return self.plan.slug if self.plan is not None else None


class AuthIndex:
    """The snapshot's credentials, compiled for lookups."""

    def __init__(self, data: SnapshotData) -> None:
        self.plans = {
            p["slug"]: Plan(
                p["slug"],
                p.get("scope", "key"),
                rate_rules("plan", p.get("limits") or {}) + quota_rules("plan", p.get("quotas") or {}),
            )
            for p in data.get("plans", ())
        }
        self.partners = {
            p["id"]: Partner(p["id"], p["slug"], p["status"], dict(p.get("subscriptions") or {}))
            for p in data.get("partners", ())
        }
        self.partners_by_slug = {p.slug: p for p in self.partners.values()}
        self.keys = {
            k["prefix"]: Key(
                k["id"],
                k["prefix"],
                k["hash"],
                k["partner"],
                frozenset(k["products"]) if k.get("products") else None,
                k.get("expires"),
            )
            for k in data.get("keys", ())
        }
        self.issuers = {
            i["issuer"]: Issuer(
                i["name"],
                i["issuer"],
                i["jwks_url"],
                i["audience"],
                i.get("partner_claim") or "azp",
                tuple(i.get("algorithms") or _DEFAULT_ALGORITHMS),
                int(i.get("leeway", 30)),
            )
            for i in data.get("jwt_issuers", ())
        }


def _challenge(error: str | None = None, description: str | None = None) -> list[tuple[bytes, bytes]]:
    value = 'Bearer realm="api"'
    if error:
        value += f', error="{error}"'
    if description:
        value += f', error_description="{description}"'
    return [(b"www-authenticate", value.encode())]


def _invalid(message: str) -> Unauthorized:
    return Unauthorized(message, headers=_challenge("invalid_token", message.rstrip(".")))


class JwksCache:
    """Signing keys per issuer, fetched with aiohttp (PyJWT's own client blocks the loop)."""

    def __init__(self) -> None:
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def key(self, issuer: Issuer, kid: str | None) -> Any | None:
        keys = self._keys.get(issuer.jwks_url)
        age = time.monotonic() - self._fetched.get(issuer.jwks_url, -1e9)
        if keys is None or (kid not in keys and age > _JWKS_MIN_REFRESH) or age > _JWKS_MAX_AGE:
            await self.refresh(issuer)
            keys = self._keys.get(issuer.jwks_url, {})
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        return keys.get(kid) if kid is not None else None

    async def refresh(self, issuer: Issuer) -> None:
        lock = self._locks.setdefault(issuer.jwks_url, asyncio.Lock())
        async with lock:
            if time.monotonic() - self._fetched.get(issuer.jwks_url, -1e9) < 1.0:
                return  # another request just fetched it
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
            try:
                async with self._session.get(issuer.jwks_url) as response:
                    response.raise_for_status()
                    document = json.loads(await response.read())
                if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
                    raise ValueError("not a JWKS document")
                keys = {}
                for jwk in document["keys"]:
                    try:
                        # The PyJWK, not its bare key: it binds the key to its algorithm, so a token
                        # whose alg does not fit the key's type is refused instead of crashing PyJWT.
                        keys[jwk.get("kid")] = jwt.PyJWK(jwk)
                    except (jwt.PyJWTError, AttributeError, KeyError, TypeError, ValueError) as exc:
                        log.warning("JWKS %s: skipping a key: %s", issuer.jwks_url, exc)
                self._keys[issuer.jwks_url] = keys
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.error("JWKS %s unavailable: %s", issuer.jwks_url, exc)
            finally:
                # Stamped when the fetch ends, so requests that queued on the lock behind a slow or
                # failing fetch use its outcome instead of each waiting for a fetch of their own.
                self._fetched[issuer.jwks_url] = time.monotonic()


class Authenticator:
    def __init__(self, pepper: bytes) -> None:
        self.pepper = pepper
        self.jwks = JwksCache()

    async def close(self) -> None:
        await self.jwks.close()

    async def authenticate(
        self, ctx: RequestContext, policy: RoutePolicy, index: AuthIndex, offered_key: str | None = None
    ) -> Identity | None:
        """``offered_key``: a key the caller offered another way (a WebSocket subprotocol)."""
        if policy.auth == "public":
            return None
        credential, from_bearer = self._credential(ctx, policy)
        if credential is None and offered_key:
            credential = offered_key
        if credential is None:
            raise Unauthorized(headers=_challenge())
        if len(credential) > apikeys.MAX_CREDENTIAL_LENGTH or not credential.isascii():
            raise _invalid("The credentials are malformed.")
        if apikeys.looks_like_key(credential) or not from_bearer:
            if policy.auth == "jwt":
                raise _invalid("This API takes a bearer token, not an API key.")
            partner, key = self._key(credential, index)
            method = "key"
            # A JWT may travel on (the upstream may want the user's claims); an API key never.
            ctx.consumed_header = "authorization" if from_bearer else "x-api-key"
        else:
            if policy.auth == "key":
                raise _invalid("The API key is not valid.")
            partner, subject = await self._jwt(credential, index)
            return self.authorize(partner, None, "jwt", policy, index, subject=f"jwt:{subject}")
        return self.authorize(partner, key, method, policy, index)

    def _credential(self, ctx: RequestContext, policy: RoutePolicy) -> tuple[str | None, bool]:
        authorization = ctx.header("authorization")
        if authorization is not None:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise _invalid("Use 'Authorization: Bearer <API key or token>'.")
            return value.strip(), True
        api_key = ctx.header("x-api-key")
        if api_key is not None:
            return api_key.strip(), False
        if policy.allow_query_key and b"api_key=" in ctx.query_string:
            pairs = parse_qsl(ctx.query_string.decode("latin-1"), keep_blank_values=True)
            found = next((v for k, v in pairs if k == "api_key"), None)
            # The key must not travel on to the upstream (or its logs). The other parameters go on
            # byte for byte: decoding and re-encoding them would change what the upstream sees.
            ctx.query_string = b"&".join(
                part
                for part in ctx.query_string.split(b"&")
                if unquote_plus(part.partition(b"=")[0].decode("latin-1")) != "api_key"
            )
            return found, False
        return None, False

    def _key(self, credential: str, index: AuthIndex) -> tuple[Partner, Key]:
        prefix = apikeys.split(credential)
        key = index.keys.get(prefix) if prefix is not None else None
        if key is None or not apikeys.verify(self.pepper, credential, key.hashed):
            raise _invalid("The API key is not valid.")
        partner = index.partners.get(key.partner_id)
        if partner is None:
            raise _invalid("The API key is not valid.")
        if key.expires is not None and key.expires <= time.time():
            raise Forbidden("The API key has expired.", code="key_expired")
        return partner, key

    async def _jwt(self, token: str, index: AuthIndex) -> tuple[Partner, str]:
        """The partner a valid token is for, and the token's subject (``sub``)."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid("The bearer token is malformed.") from None
        issuer = index.issuers.get(str(unverified.get("iss", "")))
        if issuer is None:
            raise _invalid("The token's issuer is not trusted.")
        if header.get("alg") not in issuer.algorithms:
            raise _invalid("The token's algorithm is not accepted.")
        signing_key = await self.jwks.key(issuer, header.get("kid"))
        if signing_key is None:
            raise _invalid("The token's signing key is unknown.")
        try:
            claims = jwt.decode(
                token,
                signing_key,
                algorithms=list(issuer.algorithms),
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=issuer.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("The token is not valid yet.") from None
        except jwt.InvalidAudienceError:
            raise _invalid("The token is for another audience.") from None
        except jwt.PyJWTError:
            raise _invalid("The token is not valid.") from None
        partner = index.partners_by_slug.get(str(claims.get(issuer.partner_claim, "")))
        if partner is None:
            raise Forbidden("The token's client is not a known partner.", code="unknown_partner")
        return partner, str(claims.get("sub", ""))

    def authorize(
        self,
        partner: Partner,
        key: Key | None,
        method: str,
        policy: RoutePolicy,
        index: AuthIndex,
        *,
        subject: str = "",
    ) -> Identity:
        if partner.status != "active":
            raise Forbidden(f"The partner account is {partner.status}.", code=f"partner_{partner.status}")
        plan = None
        product = policy.product or ""
        if policy.product:
            if key is not None and key.products is not None and policy.product not in key.products:
                raise Forbidden("The API key is not allowed for this API.", code="product_not_allowed")
            plan_slug = partner.subscriptions.get(policy.product)
            if plan_slug is None:
                raise Forbidden("The partner has no active subscription to this API.", code="not_subscribed")
            plan = index.plans.get(plan_slug)
        return Identity(partner, key, plan, product, method, subject or (f"key:{key.id}" if key else "jwt:"))

    def simulate(self, index: AuthIndex, policy: RoutePolicy, *, key_prefix: str = "", partner: str = "") -> Identity:
        """The identity of a key (by prefix) or a partner (by slug), as if its credentials had
        been sent: the same authorisation without the secret (explain's "as key" / "as partner")."""
        if key_prefix:
            key = index.keys.get(key_prefix)
            if key is None:
                raise Unauthorized(f"No active key with prefix {key_prefix!r} (revoked keys are unknown).")
            if key.expires is not None and key.expires <= time.time():
                raise Forbidden("The API key has expired.", code="key_expired")
            found = index.partners.get(key.partner_id)
            if found is None:
                raise _invalid("The API key is not valid.")
            return self.authorize(found, key, "key", policy, index)
        found = index.partners_by_slug.get(partner)
        if found is None:
            raise Forbidden(f"No partner {partner!r}.", code="unknown_partner")
        return self.authorize(found, None, "jwt", policy, index)
