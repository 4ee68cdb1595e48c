"""``/healthz``, ``/readyz`` and ``/metrics`` answered by the process itself, before Django.

Orchestrators probe a pod by its IP address and a Docker HEALTHCHECK asks ``127.0.0.1:8000``;
neither host is in a production ``ALLOWED_HOSTS``, so through Django every probe was a 400 (and
an ERROR with a stack trace in the log). These three answers need no host: they are served here,
as raw ASGI, without Django's request handler or middleware. Readiness and the scrape still do
blocking I/O (the database, Redis), so they run in Django's sync thread like the views did;
``/healthz`` does none.

The Django views in apigw/health.py and apigw/metrics_view.py give the same answers (same
functions) for the test client and for deployments that route these paths elsewhere.
"""

from __future__ import annotations

import json

from asgiref.sync import sync_to_async

from apigw import health, metrics_view
from proxy.gateway.types import Receive, Scope, Send

PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_JSON = b"application/json"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    method = scope["method"]
    if method not in ("GET", "HEAD"):
        await _answer(send, 405, b"text/plain", b"Method Not Allowed\n", method, [(b"allow", b"GET, HEAD")])
        return
    if path == "/healthz":
        await _answer(send, 200, _JSON, json.dumps(health.LIVE).encode(), method)
    elif path == "/readyz":
        body, status = await sync_to_async(health.readiness)()
        await _answer(send, status, _JSON, json.dumps(body).encode(), method)
    else:
        client = scope.get("client")
        if not metrics_view.client_allowed(client[0] if client else ""):
            await _answer(send, 403, b"text/plain", b"Forbidden\n", method)
            return
        accept = next((v.decode("latin-1") for n, v in scope["headers"] if n == b"accept"), "")
        data, content_type = await sync_to_async(metrics_view.exposition)(accept)
        await _answer(send, 200, content_type.encode(), data, method)


async def _answer(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    method: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
