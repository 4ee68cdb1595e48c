"""``Authorization: Bearer gwadm_…`` for the admin API (session login works too)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from adminapi import services, tokens
from adminapi.models import AdminToken


class AdminTokenAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, AdminToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None  # another scheme (or none): let session authentication try
        value = value.strip()
        prefix = tokens.split(value)
        if prefix is None:
            raise exceptions.AuthenticationFailed("The token is malformed.")
        token = AdminToken.objects.select_related("user").filter(prefix=prefix).first()
        if token is None or not tokens.verify(bytes(settings.API_KEY_PEPPER), value, token.hashed):
            raise exceptions.AuthenticationFailed("The token is not valid.")
        if token.expired:
            raise exceptions.AuthenticationFailed("The token has expired.")
        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is inactive.")
        services.admin_token_touch(token=token)
        return user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="apigw-admin"'
