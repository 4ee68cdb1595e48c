"""The gateway instance of this process, for the control-plane views that report on it
(/readyz, /metrics). Set by apigw/asgi.py; None in processes that run no gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.gateway.app import Gateway

gateway: Gateway | None = None
