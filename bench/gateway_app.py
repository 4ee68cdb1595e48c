"""Scenario (d): the gateway on one public route ("/" → the bench upstream), fed a static snapshot
instead of the database, so the figure is the data plane alone.

    BENCH_UPSTREAM_URL=http://127.0.0.1:8080 REDIS_URL=redis://127.0.0.1:6390/0 \
        uvicorn bench.gateway_app:app --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import logging
import os
from typing import Any, cast

from proxy.gateway.app import Gateway
from proxy.gateway.config import GatewayConfig
from proxy.gateway.spec import SnapshotData


def public_snapshot(upstream_url: str) -> dict[str, Any]:
    """One upstream, one public prefix route on "/". ``auth: public`` and no ``limits`` so that,
    once issue 3's phases exist, this route still needs no credentials and no Redis call."""
    return {
        "upstreams": [{"name": "bench", "targets": [{"url": upstream_url, "weight": 1}]}],
        "routes": [
            {
                "id": 1,
                "name": "bench-public",
                "upstream": "bench",
                "path_type": "prefix",
                "path": "/",
                "auth": "public",
                "limits": {},
                "protocols": ["http", "websocket"],  # bench/websockets.py relays through it too
            }
        ],
    }


def build() -> Gateway:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "warning").upper())
    data = public_snapshot(os.environ.get("BENCH_UPSTREAM_URL", "http://127.0.0.1:8080"))
    config = GatewayConfig(
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_prefix=os.environ.get("REDIS_PREFIX", "apigw-bench:"),
    )
    return Gateway(config, loader=lambda: cast(SnapshotData, data))


app = build()
