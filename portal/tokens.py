"""Signed, expiring tokens for the links the portal mails: email verification and invitations.

They carry only ids and the address they were sent to; the signature (SECRET_KEY, a salt per
purpose) makes them unforgeable, and each view re-checks the database, so a used or cancelled
link stops working even before it expires.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing

_VERIFY_SALT = "portal.verify-email"
_INVITE_SALT = "portal.invitation"


@dataclass(frozen=True, slots=True)
class Claim:
    id: int
    email: str


def _make(salt: str, pk: int, email: str) -> str:
    return signing.dumps({"id": pk, "email": email}, salt=salt, compress=True)


def _read(salt: str, token: str, max_age: int) -> Claim | None:
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
        return Claim(int(data["id"]), str(data["email"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None  # SignatureExpired is a BadSignature too


def verification_token(user_id: int, email: str) -> str:
    return _make(_VERIFY_SALT, user_id, email)


def read_verification_token(token: str) -> Claim | None:
    return _read(_VERIFY_SALT, token, settings.PORTAL_VERIFY_MAX_AGE)


def invitation_token(invitation_id: int, email: str) -> str:
    return _make(_INVITE_SALT, invitation_id, email)


def read_invitation_token(token: str) -> Claim | None:
    return _read(_INVITE_SALT, token, settings.PORTAL_INVITATION_MAX_AGE)
