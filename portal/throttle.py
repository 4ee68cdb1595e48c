"""Login throttling: failed sign-ins are counted per (username, client IP) in Django's cache
(Redis, shared by every instance); past ``PORTAL_LOGIN_ATTEMPTS`` failures the pair is refused
until ``PORTAL_LOGIN_LOCKOUT_SECONDS`` after the first failure.

Keying on the pair means an attacker cannot lock a partner out from elsewhere, while a guesser
gets a handful of tries per window. The cache ignores Redis errors (settings), so with Redis
down the throttle fails open: sign-in keeps working, unthrottled, rather than locking everyone out.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

CACHE_PREFIX = "portal:login-fail:"


def _key(username: str, ip: str) -> str:
    # Hashed: usernames are emails, and cache keys end up in Redis dumps and monitors.
    digest = hashlib.sha256(f"{username.strip().lower()}|{ip}".encode()).hexdigest()[:32]
    return CACHE_PREFIX + digest


def client_ip(request: HttpRequest) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites it.
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def is_locked(username: str, ip: str) -> bool:
    return int(cache.get(_key(username, ip)) or 0) >= settings.PORTAL_LOGIN_ATTEMPTS


def record_failure(username: str, ip: str) -> None:
    key = _key(username, ip)
    # add() starts the window only on the first failure, so retrying does not extend it.
    if not cache.add(key, 1, timeout=settings.PORTAL_LOGIN_LOCKOUT_SECONDS):
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.add(key, 1, timeout=settings.PORTAL_LOGIN_LOCKOUT_SECONDS)


def reset(username: str, ip: str) -> None:
    cache.delete(_key(username, ip))
