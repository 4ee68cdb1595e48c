"""Small upstreams for behaviours the demo API does not have."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

from tests.servers import ThreadServer, free_port


def named_upstream(name: str) -> ThreadServer:
    """Answers every request with its name; sets a cookie on /set-cookie and echoes cookies."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        cookies = [v.decode() for k, v in scope["headers"] if k == b"cookie"]
        headers = [(b"content-type", b"application/json")]
        if scope["path"] == "/set-cookie":
            headers.append((b"set-cookie", b"session=secret-of-" + name.encode() + b"; Path=/"))
        body = json.dumps({"name": name, "path": scope["path"], "cookies": cookies}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return ThreadServer(app)


class ResettingServer:
    """Accepts a connection, reads a little, and closes it: an upstream that resets."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn.recv(1024)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            finally:
                conn.close()

    def start(self) -> ResettingServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()
