"""A response's head and the first bytes of its body leave in one write.

uvicorn writes the status line and headers when the app sends ``http.response.start`` and the
body when it sends ``http.response.body``: two ``write`` system calls, and on a socket with
``TCP_NODELAY`` two segments, for nearly every response the gateway relays (its head and a
small body arrive from the upstream together). The edge protocol gives each request's
``RequestResponseCycle`` this object as its transport: the first write of the cycle (the head)
is held, and leaves joined to the next one; nginx sends its header and body with one
``writev`` the same way. On a loopback socket the send path, the peer's wake-up included, is
most of a write's price: 5.3 system calls per public-route request became 4.2, and its CPU per
request fell 4.5 % (docs/benchmarks.md, "Issue 17, fourth pass").

What is held never waits longer than one turn of the event loop (a streamed response's head
must not wait for its first chunk), never outlives its connection's response (it leaves when
the response completes, before the transport closes, before the edge writes a refusal; it is
dropped if the client has gone, as uvicorn drops the rest) and is never more than one head:
the body is written through at once, so the transport's own flow control still sees every
byte.
"""

from __future__ import annotations

import asyncio


class HeadCork:
    """The write side of one connection's transport, as its request cycles see it."""

    __slots__ = ("transport", "loop", "held", "armed")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop
        self.held: bytes | None = None
        self.armed = False  # the next write is a cycle's first: hold it

    def write(self, data: bytes) -> None:
        if self.armed:
            self.armed = False
            if self.held is None:
                self.held = data
                self.loop.call_soon(self.flush)  # what nothing else joins by then leaves alone
                return
        held = self.held
        if held is None:
            self.transport.write(data)
        else:
            self.held = None
            self.transport.writelines((held, data))  # one writev on uvloop; no copy of the body

    def flush(self) -> None:
        held = self.held
        if held is not None:
            self.held = None
            # A client gone meanwhile: uvicorn writes nothing more to it either (uvloop would
            # raise on a closed transport, in a loop callback nobody awaits).
            if not self.transport.is_closing():
                self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()
