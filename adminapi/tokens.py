"""Admin API token format: ``gwadm_<prefix>_<secret>``, shown once.

Like partners' API keys (proxy/gateway/apikeys.py): the prefix finds the token, the database
keeps only HMAC-SHA256(pepper, whole token), compared in constant time. The distinct leading
``gwadm_`` keeps an admin token from ever being mistaken for a partner key, and lets secret
scanners tell the two apart.
"""

from __future__ import annotations

import re
import secrets

from proxy.gateway import apikeys

TOKEN_PREFIX = "gwadm_"
PREFIX_LENGTH = 8
SECRET_LENGTH = 40
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_TOKEN_RE = re.compile(rf"gwadm_([a-z2-7]{{{PREFIX_LENGTH}}})_([A-Za-z0-9_-]{{{SECRET_LENGTH}}})")


def generate() -> tuple[str, str]:
    """A new token and its prefix."""
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = secrets.token_urlsafe(SECRET_LENGTH)[:SECRET_LENGTH]
    return f"{TOKEN_PREFIX}{prefix}_{secret}", prefix


def split(token: str) -> str | None:
    """The prefix of a well-formed token, else None."""
    found = _TOKEN_RE.fullmatch(token)
    return found.group(1) if found else None


def digest(pepper: bytes, token: str) -> str:
    return apikeys.digest(pepper, token)


def verify(pepper: bytes, token: str, hashed: str) -> bool:
    return apikeys.verify(pepper, token, hashed)
