"""Admin API token format: ``gwadm_<prefix>_<secret>``, shown once.

Like partners' API keys (proxy/gateway/apikeys.py): the prefix finds the token, the database
keeps only HMAC-SHA256(pepper, whole token), compared in constant time. The distinct leading
``gwadm_`` keeps an admin token from ever being mistaken for a partner key, and lets secret
scanners tell the two apart.
"""

from __future__ import annotations

from proxy.gateway.apikeys import SecretFormat, digest, verify

TOKEN_PREFIX = "gwadm_"
PREFIX_LENGTH = 8
SECRET_LENGTH = 40
ADMIN_TOKEN = SecretFormat(TOKEN_PREFIX, PREFIX_LENGTH, SECRET_LENGTH)
generate = ADMIN_TOKEN.generate
split = ADMIN_TOKEN.split

__all__ = ["ADMIN_TOKEN", "PREFIX_LENGTH", "TOKEN_PREFIX", "digest", "generate", "split", "verify"]
