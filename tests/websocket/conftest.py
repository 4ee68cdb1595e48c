"""Fixtures of the WebSocket tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.upstreams import WebSocketUpstream


@pytest.fixture
def ws_upstream() -> Iterator[WebSocketUpstream]:
    server = WebSocketUpstream().start()
    yield server
    server.stop()
