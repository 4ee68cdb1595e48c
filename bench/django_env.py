"""Django for the benchmarks that drive the control plane in-process (config_apply.py,
snapshot_reload.py): the project's settings on a database of the benchmark's choosing and a Redis
namespace of its own, migrated."""

from __future__ import annotations

import os
import uuid


def setup(database_url: str, name: str) -> None:
    """Configure and start Django on ``database_url``, Redis keys under ``bench-<name>-…:``."""
    os.environ.setdefault("DEBUG", "true")
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
    os.environ["REDIS_PREFIX"] = f"bench-{name}-{uuid.uuid4().hex[:8]}:"
    os.environ.setdefault("LOG_LEVEL", "warning")
    os.environ["DJANGO_SETTINGS_MODULE"] = "apigw.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
