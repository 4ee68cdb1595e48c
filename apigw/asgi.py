"""The process's ASGI entry point: wires the data plane and the control plane.

- ``lifespan``: the gateway opens its upstream pool and Redis, loads its snapshot; closes them.
- ``http``: ``/healthz``, ``/readyz``, ``/metrics`` answered before Django (probes.py); Django for
  the control prefixes (``GATEWAY_CONTROL_PREFIXES``: admin, portal, admin
  API, health, metrics, static), the gateway for everything else. The gateway path never enters
  Django's request handler (≈1.4 ms per request measured, see docs/architecture.md).
- ``websocket``: the gateway's WebSocket passthrough.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apigw.settings")

from django.conf import settings
from django.core.asgi import get_asgi_application

from apigw import startup

# Sets Django up before the imports below touch models; a bad configuration ends the process
# here with one line naming the variable (startup.py), before the server reports started.
django_app = startup.configured(get_asgi_application)

from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402

from apigw import bodylimit, probes, runtime  # noqa: E402
from proxy.gateway import metrics  # noqa: E402
from proxy.gateway.app import Gateway  # noqa: E402
from proxy.gateway.config import GatewayConfig  # noqa: E402
from proxy.gateway.types import Receive, Scope, Send  # noqa: E402
from proxy.snapshot_builder import build_snapshot  # noqa: E402
from proxy.usage import flush_usage, report_quota_usage  # noqa: E402

_config = GatewayConfig.from_settings(settings)
gateway = Gateway(
    _config,
    loader=build_snapshot,
    maintenance=[(_config.usage_flush_seconds, flush_usage), (60.0, report_quota_usage)],
    channel_layer=get_channel_layer(),
)
runtime.gateway = gateway
metrics.configure(
    partner_labels_spec=settings.METRICS_PARTNER_LABELS, partner_labels_limit=settings.METRICS_PARTNER_LABELS_MAX
)
_control_prefixes = tuple(gateway.config.control_prefixes)
_control_max_body = settings.CONTROL_MAX_BODY_BYTES


async def http(scope: Scope, receive: Receive, send: Send) -> None:
    if not gateway.started:  # a server without lifespan (daphne: runserver) starts it on first use
        await gateway.ensure_started()
    path = scope["path"]
    if path in probes.PATHS:  # before Django's host validation: probes come by pod IP (probes.py)
        await probes.app(scope, receive, send)
    elif path.startswith(_control_prefixes):
        # Django reads a whole body before any view runs: capped while it arrives (bodylimit.py).
        await bodylimit.limited(django_app, _control_max_body, scope, receive, send)  # type: ignore[arg-type]
    else:
        await gateway.http(scope, receive, send)


async def websocket(scope: Scope, receive: Receive, send: Send) -> None:
    if not gateway.started:
        await gateway.ensure_started()
    await gateway.websocket(scope, receive, send)


# Channels routes by protocol; WebSockets go to the gateway's raw relay, not to a consumer
# (Channels' generic consumers hop to a thread per frame).
application = ProtocolTypeRouter({"http": http, "websocket": websocket, "lifespan": gateway.lifespan})
