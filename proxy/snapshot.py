"""Build the plain-data description of the configuration that the data plane compiles.

Runs in a worker thread of the gateway process (``ConfigStore`` calls it with
``asyncio.to_thread``) and in the control plane for ``explain``; it only reads.
"""

from __future__ import annotations

from typing import Any

from django.db import close_old_connections

from proxy.models import Route, Target, Upstream


def build_snapshot() -> dict[str, Any]:
    close_old_connections()
    try:
        targets: dict[int, list[dict[str, Any]]] = {}
        for target in Target.objects.filter(enabled=True).order_by("id"):
            targets.setdefault(target.upstream_id, []).append({"url": target.url, "weight": target.weight})
        upstreams = [
            {
                "name": u.name,
                "targets": targets.get(u.pk, []),
                "connect_timeout": u.connect_timeout,
                "read_timeout": u.read_timeout,
            }
            for u in Upstream.objects.order_by("name")
        ]
        routes = [r.snapshot_spec() for r in Route.objects.filter(enabled=True).select_related("upstream")]
        return {"upstreams": upstreams, "routes": routes}
    finally:
        close_old_connections()
