"""Throttles of the control plane: failed logins, sign-ups, verification and reset mails.

Counters live in Django's cache, which is Redis shared by every instance, so a limit holds
across the whole fleet and not per process. A window starts at the first hit and is not extended
by later ones. The cache ignores Redis errors (settings), so with Redis down every throttle fails
open: logins and sign-ups keep working, unthrottled, rather than locking everyone out.

Who is counted (see docs/security.md):

- logins (portal and Django admin): failures per (account, client IP), and per client IP across
  accounts. Nothing is counted per account alone, so nobody can lock another client out; the
  client IP comes from apigw/clientip.py, so behind a load balancer clients are told apart.
- sign-up, resend-verification and password reset: per client IP (the form answers 429) and per
  email address (the mail is quietly not sent, so the answer still tells nothing about accounts).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

CACHE_PREFIX = "throttle:"


@dataclass(frozen=True, slots=True)
class Rule:
    scope: str
    limit: int
    window: int  # seconds

    def key(self, *parts: str) -> str:
        # Hashed: emails and addresses are personal data, and cache keys end up in Redis dumps.
        digest = hashlib.sha256("|".join(p.strip().lower() for p in parts).encode()).hexdigest()[:32]
        return f"{CACHE_PREFIX}{self.scope}:{digest}"

    def exceeded(self, *parts: str) -> bool:
        return int(cache.get(self.key(*parts)) or 0) >= self.limit

    def hit(self, *parts: str) -> None:
        key = self.key(*parts)
        # add() starts the window only on the first hit, so retrying does not extend it.
        if not cache.add(key, 1, timeout=self.window):
            try:
                cache.incr(key)
            except ValueError:  # expired between add() and incr()
                cache.add(key, 1, timeout=self.window)

    def reset(self, *parts: str) -> None:
        cache.delete(self.key(*parts))


# Built per call: settings can change under tests, and these are a few attribute reads.
def login_per_account_ip() -> Rule:
    return Rule("login-account-ip", settings.LOGIN_ATTEMPTS, settings.LOGIN_LOCKOUT_SECONDS)


def login_per_ip() -> Rule:
    return Rule("login-ip", settings.LOGIN_ATTEMPTS_PER_IP, settings.LOGIN_LOCKOUT_SECONDS)


def mail_action_per_ip(action: str) -> Rule:
    return Rule(f"{action}-ip", settings.PORTAL_MAIL_ACTIONS_PER_IP, settings.PORTAL_MAIL_ACTIONS_WINDOW_SECONDS)


def mail_action_per_address(action: str) -> Rule:
    return Rule(
        f"{action}-address", settings.PORTAL_MAIL_ACTIONS_PER_ADDRESS, settings.PORTAL_MAIL_ACTIONS_WINDOW_SECONDS
    )


def login_locked(account: str, ip: str) -> bool:
    return login_per_ip().exceeded(ip) or login_per_account_ip().exceeded(account, ip)


def login_failed(account: str, ip: str) -> None:
    login_per_account_ip().hit(account, ip)
    login_per_ip().hit(ip)


def login_succeeded(account: str, ip: str) -> None:
    # Only the pair: a success on one's own account must not wash away failures on others'.
    login_per_account_ip().reset(account, ip)


def mail_action_allowed_from(action: str, ip: str) -> bool:
    """Count an attempt of ``action`` from ``ip``; False once the IP is past its limit."""
    rule = mail_action_per_ip(action)
    if rule.exceeded(ip):
        return False
    rule.hit(ip)
    return True


def mail_allowed_to(action: str, email: str) -> bool:
    """Count a mail of ``action`` to ``email``; False once the address had its share."""
    rule = mail_action_per_address(action)
    if rule.exceeded(email):
        return False
    rule.hit(email)
    return True
