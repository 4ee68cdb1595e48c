"""API key format: ``gw_<prefix>_<secret>``.

The prefix (8 lower-case base-32 characters) is public: it names the key in listings, logs and
the portal, and it is how the gateway finds the key. The secret (32 URL-safe characters, 190
bits) is shown once. The database and the snapshot keep only HMAC-SHA256(pepper, whole key):
a stolen database or Redis dump yields no usable keys, and a lookup by prefix followed by
``hmac.compare_digest`` leaks no timing about the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX_LENGTH = 8
SECRET_LENGTH = 32
KEY_PREFIX = "gw_"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
MAX_CREDENTIAL_LENGTH = 4096  # longer Authorization values are refused before any work


class SecretFormat:
    """``<leading><prefix>_<secret>``: a readable kind marker, a public lookup prefix, a secret.
    Partner keys and admin API tokens share it with different markers, so neither can ever be
    taken for the other."""

    def __init__(self, leading: str, prefix_length: int, secret_length: int) -> None:
        self.leading = leading
        self.prefix_length = prefix_length
        self.secret_length = secret_length
        self._pattern = re.compile(
            rf"{re.escape(leading)}([a-z2-7]{{{prefix_length}}})_([A-Za-z0-9_-]{{{secret_length}}})"
        )

    def generate(self) -> tuple[str, str]:
        """A new secret and its prefix."""
        prefix = "".join(secrets.choice(_ALPHABET) for _ in range(self.prefix_length))
        secret = secrets.token_urlsafe(self.secret_length)[: self.secret_length]
        return f"{self.leading}{prefix}_{secret}", prefix

    def split(self, value: str) -> str | None:
        """The prefix of a well-formed value, else None."""
        found = self._pattern.fullmatch(value)
        return found.group(1) if found else None


API_KEY = SecretFormat(KEY_PREFIX, PREFIX_LENGTH, SECRET_LENGTH)
generate = API_KEY.generate
split = API_KEY.split


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX)


def digest(pepper: bytes, key: str) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, same bytes as hmac.new(...) without its Python
    # object and two hash copies (once per authenticated request).
    return hmac.digest(pepper, key.encode(), "sha256").hex()


def verify(pepper: bytes, key: str, hashed: str) -> bool:
    return hmac.compare_digest(digest(pepper, key), hashed)


def pepper_from_secret(secret: str) -> bytes:
    """Derive the hashing key from a configured secret (API_KEY_PEPPER or SECRET_KEY)."""
    return hashlib.sha256(b"apigw-api-key-pepper:" + secret.encode()).digest()
