"""Sending an API key on a WebSocket from a browser, which cannot set headers.

A browser page offers the key as a subprotocol, next to a bare marker and the protocols it
really speaks::

    new WebSocket(url, ["v1", "apikey", "apikey." + key])

The gateway takes ``apikey.<key>`` and ``apikey`` out before the upstream sees the offer, and
answers the handshake with a protocol the client offered, as browsers require (Chromium fails
a handshake whose answer lacks a protocol when it offered any):

- the protocol the upstream selected, when it selected one;
- otherwise ``apikey`` (the marker), when the client offered it: the page connects and can tell
  from ``ws.protocol`` that the upstream chose none;
- otherwise, when the client offered nothing but ``apikey.<key>``, that same value, sent back
  only to the client that sent it (the form older snippets used; prefer the marker);
- otherwise no protocol, as the upstream answered.

A key protocol is only read where the route allows keys outside headers (``allow_query_key``);
elsewhere it is still removed, never forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.gateway.context import RequestContext

KEY_PREFIX = "apikey."
MARKER = "apikey"


@dataclass(frozen=True, slots=True)
class Offer:
    protocols: list[str]  # what the upstream is offered: the client's, less the key protocols
    key: str | None  # a key sent as ``apikey.<key>`` (None where the route does not read one)
    key_protocol: str | None  # the ``apikey.<key>`` token as the client sent it
    marker: bool  # the client offered the bare ``apikey``

    def answer(self, upstream_protocol: str | None) -> str | None:
        """The protocol to accept the client's handshake with (see the module docstring)."""
        if upstream_protocol:
            return upstream_protocol
        if self.marker:
            return MARKER
        if self.key_protocol is not None and not self.protocols:
            return self.key_protocol
        return None


def offered(ctx: RequestContext, allow_key: bool) -> Offer:
    protocols: list[str] = []
    key = key_protocol = None
    marker = False
    for value in ctx.headers.get("sec-websocket-protocol", ()):
        for token in value.split(","):
            token = token.strip()
            if not token:
                continue
            if token == MARKER:
                marker = True
            elif token.startswith(KEY_PREFIX):
                key_protocol = token
                if allow_key:
                    key = token[len(KEY_PREFIX) :]
            else:
                protocols.append(token)
    return Offer(protocols, key, key_protocol, marker)
