"""JWT bearer tokens through a real gateway, verified against a JWKS served on a 127.0.0.1 port.

The identity provider signs with an RSA key (RS256) and an EC P-256 key (ES256); mallory holds
keys of her own and tries to pass her tokens off as the provider's. Partners are named by the
token's ``azp`` claim (the partners of test_auth.py): acme is active and subscribed,
suspended-co is suspended, idle-co subscribes to nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.gateway.test_auth import PARTNERS, PEPPER, PLANS, assert_refused, issue_key, route, upstream
from tests.servers import ThreadServer, free_port, wait_until

pytestmark = pytest.mark.timeout(60)

ISSUER = "https://id.example.test/"
AUDIENCE = "https://api.example.test"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
MALLORY_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
MALLORY_EC_KEY = ec.generate_private_key(ec.SECP256R1())
SIGNERS = {"RS256": (RSA_KEY, "rsa-1"), "ES256": (EC_KEY, "ec-1")}


def jwks_document() -> dict[str, Any]:
    keys = []
    for public, kid in ((RSA_KEY.public_key(), "rsa-1"), (EC_KEY.public_key(), "ec-1")):
        algorithm = jwt.algorithms.RSAAlgorithm if kid.startswith("rsa") else jwt.algorithms.ECAlgorithm
        keys.append({**algorithm.to_jwk(public, as_dict=True), "kid": kid, "use": "sig"})
    return {"keys": keys}


class JwksServer:
    """The identity provider's JWKS endpoint; ``body`` may be replaced to serve something else."""

    def __init__(self, port: int | None = None) -> None:
        self.body = json.dumps(jwks_document()).encode()
        self.fetches = 0

        async def app(scope: Any, receive: Any, send: Any) -> None:  # a function: uvicorn sees ASGI 3
            if scope["type"] != "http":
                return
            self.fetches += 1
            start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            await send(start)
            await send({"type": "http.response.body", "body": self.body})

        self.server = ThreadServer(app, port=port)

    @property
    def url(self) -> str:
        return f"{self.server.url}/.well-known/jwks.json"

    def start(self) -> JwksServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()


class SilentServer:
    """Accepts connections (the kernel does, from the backlog) and never answers: a hung JWKS."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/jwks.json"

    def close(self) -> None:
        self.sock.close()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "azp": "acme", "iat": now, "exp": now + 300}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


_OWN_KID = "<the signing key's kid>"


def token(alg: str = "RS256", key: Any = None, kid: str | None = _OWN_KID, **overrides: Any) -> str:
    """A token signed by the provider's key for ``alg`` unless ``key`` (and ``kid``) say otherwise;
    ``kid=None`` leaves the kid out."""
    own_key, own_kid = SIGNERS[alg]
    kid = own_kid if kid == _OWN_KID else kid
    return jwt.encode(claims(**overrides), key or own_key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], secret: bytes | None = None, **overrides: Any) -> str:
    """A token put together by hand, HMAC-signed with ``secret`` or unsigned."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims(**overrides)).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret is not None else b""
    return f"{signing_input}.{b64(signature)}"


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    server = JwksServer().start()
    yield server
    server.stop()


def snapshot(demo_upstream: str, jwks_url: str, keys: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return {
        "upstreams": [upstream("demo", demo_upstream)],
        "routes": [
            route("jwt", "/jwt", auth="jwt"),
            route("either", "/either", auth="key_or_jwt"),
            route("keyed", "/keyed", auth="key"),
        ],
        "plans": PLANS,
        "partners": PARTNERS,
        "keys": list(keys),
        "jwt_issuers": [
            {
                "name": "idp",
                "issuer": ISSUER,
                "jwks_url": jwks_url,
                "audience": AUDIENCE,
                "partner_claim": "azp",
                "algorithms": ["RS256", "ES256"],
                "leeway": 30,
            }
        ],
    }


@pytest.fixture
def alice_key() -> tuple[str, dict[str, Any]]:
    return issue_key(1, 1)


@pytest.fixture
def client(
    static_gateway: Any, demo_upstream: str, jwks: JwksServer, alice_key: tuple[str, dict[str, Any]]
) -> Iterator[httpx.Client]:
    server = static_gateway(snapshot(demo_upstream, jwks.url, [alice_key[1]]), api_key_pepper=PEPPER)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_valid_token_reaches_the_upstream_as_the_partner_in_azp(client: httpx.Client, alg: str) -> None:
    response = client.get("/jwt/x", headers=bearer(token(alg)))
    assert response.status_code == 200, response.text
    headers = response.json()["headers"]
    assert headers["x-partner-id"] == "acme"
    assert headers["x-plan"] == "gold"
    assert "x-key-id" not in headers


def test_a_token_within_the_leeway_is_accepted(client: httpx.Client) -> None:
    assert client.get("/jwt/x", headers=bearer(token(exp=int(time.time()) - 5))).status_code == 200


# Claims as functions of the moment the token is made: times taken at collection would be ten
# minutes stale by the time a long run reaches these tests.
@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(lambda now: {"exp": now - 120}, id="expired"),
        pytest.param(lambda now: {"nbf": now + 600}, id="not-yet-valid"),
        pytest.param(lambda now: {"exp": None}, id="no-expiry"),
        pytest.param(lambda now: {"aud": "https://other.example.test"}, id="wrong-audience"),
        pytest.param(lambda now: {"aud": None}, id="no-audience"),
        pytest.param(lambda now: {"iss": "https://evil.example.test/"}, id="untrusted-issuer"),
        pytest.param(lambda now: {"iss": None}, id="no-issuer"),
    ],
)
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_token_with_bad_claims_is_a_401(
    client: httpx.Client, alg: str, overrides: Callable[[int], dict[str, Any]]
) -> None:
    response = client.get("/jwt/x", headers=bearer(token(alg, **overrides(int(time.time())))))
    assert_refused(response, 401, "unauthorized")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_an_expired_token_says_so(client: httpx.Client) -> None:
    response = client.get("/jwt/x", headers=bearer(token(exp=int(time.time()) - 120)))
    assert response.json()["error"]["message"] == "The token has expired."


@pytest.mark.parametrize(
    ("alg", "key", "kid"),
    [
        pytest.param("RS256", MALLORY_RSA_KEY, "rsa-1", id="rs256-other-key-same-kid"),
        pytest.param("ES256", MALLORY_EC_KEY, "ec-1", id="es256-other-key-same-kid"),
        pytest.param("RS256", MALLORY_RSA_KEY, "mallory-1", id="unknown-kid"),
        pytest.param("RS256", RSA_KEY, "rotated-away", id="unknown-kid-provider-key"),
        pytest.param("RS256", RSA_KEY, None, id="no-kid-with-several-keys"),
        # A key of the wrong type for the algorithm must be a refusal, not a crash in PyJWT.
        pytest.param("RS256", RSA_KEY, "ec-1", id="rs256-naming-the-ec-key"),
        pytest.param("ES256", EC_KEY, "rsa-1", id="es256-naming-the-rsa-key"),
    ],
)
def test_a_token_not_signed_by_the_providers_key_is_a_401(client: httpx.Client, alg: str, key: Any, kid: Any) -> None:
    assert_refused(client.get("/jwt/x", headers=bearer(token(alg, key=key, kid=kid))), 401, "unauthorized")


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param(lambda: forged({"alg": "none", "typ": "JWT", "kid": "rsa-1"}), id="alg-none"),
        pytest.param(lambda: forged({"alg": "None", "kid": "rsa-1"}), id="alg-None"),
        pytest.param(lambda: forged({"kid": "rsa-1"}), id="no-alg"),
        pytest.param(lambda: forged({"alg": "HS256", "kid": "rsa-1"}, public_pem(RSA_KEY)), id="hs256-with-public-pem"),
        pytest.param(
            lambda: forged({"alg": "HS256", "kid": "rsa-1"}, json.dumps(jwks_document()["keys"][0]).encode()),
            id="hs256-with-public-jwk",
        ),
        pytest.param(lambda: forged({"alg": "RS256", "kid": ["rsa-1"]}), id="kid-as-list"),
        pytest.param(lambda: forged({"alg": "RS256", "kid": "rsa-1"}, iss=[ISSUER]), id="issuer-as-list"),
        pytest.param(lambda: forged({"alg": ["RS256"], "kid": "rsa-1"}), id="alg-as-list"),
        pytest.param(lambda: forged({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"]}), id="unknown-crit"),
        pytest.param(lambda: token()[:-10] + "AAAAAAAAAA", id="tampered-signature"),
        pytest.param(lambda: token().rsplit(".", 1)[0] + ".", id="signature-stripped"),
        pytest.param(lambda: ".".join(token().split(".")[:2]), id="two-parts"),
    ],
)
def test_forged_and_confused_tokens_are_a_401(client: httpx.Client, credential: Callable[[], str]) -> None:
    assert_refused(client.get("/jwt/x", headers=bearer(credential())), 401, "unauthorized")


def test_forged_kids_do_not_flood_the_identity_provider(client: httpx.Client, jwks: JwksServer) -> None:
    assert client.get("/jwt/x", headers=bearer(token())).status_code == 200
    before = jwks.fetches
    for _ in range(20):
        forged_kid = token(key=MALLORY_RSA_KEY, kid=uuid.uuid4().hex)
        assert client.get("/jwt/x", headers=bearer(forged_kid)).status_code == 401
    assert jwks.fetches - before <= 1


@pytest.mark.parametrize(
    ("azp", "code"),
    [
        ("nobody", "unknown_partner"),
        (None, "unknown_partner"),
        ("suspended-co", "partner_suspended"),
        ("idle-co", "not_subscribed"),
    ],
)
def test_a_valid_token_for_a_partner_that_may_not_call_is_a_403(client: httpx.Client, azp: Any, code: str) -> None:
    assert_refused(client.get("/jwt/x", headers=bearer(token(azp=azp))), 403, code)


def test_a_key_or_jwt_route_accepts_both(client: httpx.Client, alice_key: tuple[str, dict[str, Any]]) -> None:
    alice, spec = alice_key
    by_key = client.get("/either/x", headers={"X-API-Key": alice})
    assert by_key.status_code == 200, by_key.text
    assert by_key.json()["headers"]["x-key-id"] == spec["prefix"]
    by_bearer_key = client.get("/either/x", headers=bearer(alice))
    assert by_bearer_key.status_code == 200, by_bearer_key.text
    by_token = client.get("/either/x", headers=bearer(token("ES256")))
    assert by_token.status_code == 200, by_token.text
    assert by_token.json()["headers"]["x-partner-id"] == "acme"
    assert "x-key-id" not in by_token.json()["headers"]


def test_a_jwt_route_refuses_an_api_key(client: httpx.Client, alice_key: tuple[str, dict[str, Any]]) -> None:
    alice = alice_key[0]
    for headers in (bearer(alice), {"X-API-Key": alice}):
        assert_refused(client.get("/jwt/x", headers=headers), 401, "unauthorized")


def test_a_key_route_refuses_a_token(client: httpx.Client) -> None:
    for headers in (bearer(token()), {"X-API-Key": token()}):
        assert_refused(client.get("/keyed/x", headers=headers), 401, "unauthorized")


def test_an_unreachable_jwks_is_a_quick_401(static_gateway: Any, demo_upstream: str) -> None:
    server = static_gateway(snapshot(demo_upstream, f"http://127.0.0.1:{free_port()}/jwks.json"))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(3):
            started = time.monotonic()
            response = client.get("/jwt/x", headers=bearer(token()))
            assert_refused(response, 401, "unauthorized")
            assert time.monotonic() - started < 1.0


def test_a_hung_jwks_costs_one_timeout_not_one_per_waiting_request(static_gateway: Any, demo_upstream: str) -> None:
    silent = SilentServer()
    try:
        server = static_gateway(snapshot(demo_upstream, silent.url))
        statuses: list[int] = []

        def call() -> None:
            statuses.append(httpx.get(server.url + "/jwt/x", headers=bearer(token()), timeout=30).status_code)

        started = time.monotonic()
        callers = [threading.Thread(target=call) for _ in range(5)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert statuses == [401] * 5
    # One fetch times out (a few seconds); the requests queued behind it must not each wait again.
    assert elapsed < 6.0


def test_tokens_are_accepted_once_the_jwks_comes_back(static_gateway: Any, demo_upstream: str) -> None:
    port = free_port()
    jwks = JwksServer(port=port)
    server = static_gateway(snapshot(demo_upstream, jwks.url))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/jwt/x", headers=bearer(token())).status_code == 401
        jwks.start()
        try:
            wait_until(
                lambda: client.get("/jwt/x", headers=bearer(token())).status_code == 200, timeout=15, interval=0.2
            )
        finally:
            jwks.stop()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>not json</html>", id="html"),
        pytest.param(b"[]", id="json-array"),
        pytest.param(b'{"keys": "none"}', id="keys-not-a-list"),
        pytest.param(b'{"keys": [1, "two", null]}', id="keys-not-objects"),
        pytest.param(b'{"keys": [{"kty": "oct", "kid": "rsa-1"}]}', id="secret-key-without-k"),
        pytest.param(b'{"keys": [{"kty": "RSA", "kid": "rsa-1"}]}', id="rsa-key-without-n"),
        pytest.param(b'{"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": "AA", "y": "AA"}]}', id="bad-ec"),
    ],
)
def test_a_broken_jwks_is_a_401(static_gateway: Any, demo_upstream: str, body: bytes) -> None:
    jwks = JwksServer()
    jwks.body = body
    jwks.start()
    try:
        server = static_gateway(snapshot(demo_upstream, jwks.url))
        response = httpx.get(server.url + "/jwt/x", headers=bearer(token()), timeout=10)
        assert_refused(response, 401, "unauthorized")
    finally:
        jwks.stop()


def test_a_jwks_with_one_good_key_among_broken_ones_still_verifies(static_gateway: Any, demo_upstream: str) -> None:
    jwks = JwksServer()
    good = jwks_document()["keys"]
    jwks.body = json.dumps({"keys": [{"kty": "RSA", "kid": "broken"}, {"kty": "oct", "kid": "x"}, *good]}).encode()
    jwks.start()
    try:
        server = static_gateway(snapshot(demo_upstream, jwks.url))
        for alg in ("RS256", "ES256"):
            response = httpx.get(server.url + "/jwt/x", headers=bearer(token(alg)), timeout=10)
            assert response.status_code == 200, response.text
    finally:
        jwks.stop()
