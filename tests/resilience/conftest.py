from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.resilience.backend import Backend


def route(name: str, path: str, upstream: str, **extra: Any) -> dict[str, Any]:
    extra.setdefault("auth", "public")
    return {"name": name, "path": path, "path_type": "prefix", "upstream": upstream, **extra}


def upstream(name: str, *urls: str, weights: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    weights = weights or [1] * len(urls)
    return {"name": name, "targets": [{"url": u, "weight": w} for u, w in zip(urls, weights, strict=True)], **extra}


@pytest.fixture
def backends() -> Iterator[Any]:
    """Start in-thread backends by name; all stopped at the end."""
    started: list[Backend] = []

    def start(name: str, **options: Any) -> Backend:
        backend = Backend(name, **options).start()
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()
