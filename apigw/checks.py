"""Configuration invariants as Django system checks (``manage.py check``; run at start-up)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register


@register()
def gateway_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    gateway: dict[str, Any] = settings.GATEWAY
    prefixes: list[str] = gateway["CONTROL_PREFIXES"]
    if any(not p.startswith("/") for p in prefixes):
        problems.append(Error("GATEWAY_CONTROL_PREFIXES entries must start with '/'.", id="apigw.E001"))
    if "/" in prefixes:
        problems.append(
            Error("GATEWAY_CONTROL_PREFIXES must not contain '/': the gateway would serve nothing.", id="apigw.E002")
        )
    if gateway["READ_TIMEOUT"] < gateway["CONNECT_TIMEOUT"]:
        problems.append(Warning("GATEWAY_READ_TIMEOUT is shorter than GATEWAY_CONNECT_TIMEOUT.", id="apigw.W001"))
    if not settings.DEBUG and settings.SECRET_KEY.startswith("insecure-"):
        problems.append(Error("SECRET_KEY is the development key while DEBUG is off.", id="apigw.E003"))
    return problems
