"""A body limit for the paths Django serves, enforced while the body arrives.

Django's ASGI handler reads a request's whole body (spooling past 2.5 MB to disk) before any
view, CSRF check or login runs, so an anonymous client could make every instance write 400 MiB
to disk per request on ``/portal/`` or ``/admin/``. This wrapper answers 413 as soon as the
declared length, or the bytes received so far, pass ``CONTROL_MAX_BODY_BYTES`` — before Django
reads more — and closes the connection. The largest legitimate body is a declarative
configuration applied through the admin API (about 3 MB for 10,000 routes).
"""

from __future__ import annotations

import json

from proxy.gateway.types import ASGIApp, Message, Receive, Scope, Send


def _refusal(limit: int) -> tuple[Message, Message]:
    body = json.dumps(
        {"error": {"code": "payload_too_large", "message": f"The request body may be at most {limit} bytes."}}
    ).encode()
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


async def limited(app: ASGIApp, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > limit):
            for message in _refusal(limit):
                await send(message)
            return
    received = 0
    refused = False

    async def counted_receive() -> Message:
        nonlocal received, refused
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit and not refused:
                refused = True
                for answer in _refusal(limit):
                    await send(answer)
                return {"type": "http.disconnect"}  # Django stops reading and answers nothing
        return message

    async def guarded_send(message: Message) -> None:
        if not refused:  # after our 413, nothing of Django's may follow on this connection
            await send(message)

    await app(scope, counted_receive, guarded_send)
